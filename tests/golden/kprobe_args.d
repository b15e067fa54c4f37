fbt:vmlinux:vfs_read:entry
{
	@bytes = sum(arg2);
	self->f = args[0];
}

fbt:vmlinux:vfs_read:return
/self->f/
{
	trace(arg1);
	self->f = 0;
}
