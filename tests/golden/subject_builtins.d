/* on-cpu's pid, tid and execname are the incoming thread's (provider builtins) */
sched:::on-cpu
{
	@[execname, pid, tid] = count();
}
