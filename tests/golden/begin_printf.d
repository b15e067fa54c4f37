BEGIN
{
	printf("%d %s %5u|%-8s|\n", 42, "hi", 7, execname);
	exit(0);
}
