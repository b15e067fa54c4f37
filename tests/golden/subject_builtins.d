/* on-cpu describes the incoming thread (Binding.thread): built-ins and self-> alike */
sched:::on-cpu
/self->ts/
{
	@[execname, pid, tid, ppid, uid] = count();
	self->ts = 0;
}
