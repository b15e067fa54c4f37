/* one raw tracepoint serves both probes: a selector map by syscall number */
syscall::read:entry,
syscall::write:entry
/arg0 == 1/
{
	@bytes[probefunc] = sum(arg2);
}

syscall::write:entry
{
	@writes = count();
}
