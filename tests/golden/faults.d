BEGIN
{
	x = 1 / arg0;
	y = *(int *)arg1;
	trace(x + y);
	exit(0);
}

ERROR
{
	printf("fault %d at %x\n", arg4, arg5);
}
