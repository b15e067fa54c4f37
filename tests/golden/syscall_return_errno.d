syscall::openat:return
/errno != 0/
{
	printf("openat failed: %d errno %d\n", arg0, errno);
}
