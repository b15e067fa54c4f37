string greeting;

BEGIN
{
	greeting = $$2;
	n = $1 + 1;
	printf("%s %d %d %d\n", greeting, n, $pid, walltimestamp > 0);
	setopt("quiet");
	exit(0);
}
