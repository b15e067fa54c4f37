BEGIN
{
	a["x", 1] = 5;
	s = "hello";
	u[s] = strjoin(s, " world");
	printf("%d %s %d\n", a["x", 1], u["hello"], strlen(u[s]));
	exit(0);
}
