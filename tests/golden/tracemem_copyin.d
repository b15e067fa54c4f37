syscall::write:entry
/arg0 == 1/
{
	tracemem(arg1, 32);
	printf("%s|%d\n", copyinstr(arg1, 16), *(char *)copyin(arg1, 1));
}
