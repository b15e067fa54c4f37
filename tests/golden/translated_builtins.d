syscall::read:entry
/curpsinfo->pr_pid == $1/
{
	printf("%s %s %d %d\n", curpsinfo->pr_psargs, fds[arg0].fi_pathname, fds[arg0].fi_offset,
	    curlwpsinfo->pr_state);
	@[curcpu->cpu_id, cwd, execname[0]] = count();
	trace(uregs[R_PC]);
	trace(caller);
}
