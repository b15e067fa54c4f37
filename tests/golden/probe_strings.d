syscall::read:entry,
syscall::write:entry,
syscall::close:entry
{
	printf("%s:%s:%s:%s %d\n", probeprov, probemod, probefunc, probename, id);
}
