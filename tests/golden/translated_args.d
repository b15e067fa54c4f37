proc:::create
{
	printf("%d %d %d %s\n", args[0]->pr_pid, args[0]->pr_ppid, args[0]->pr_uid,
	    args[0]->pr_fname);
}

sched:::off-cpu
{
	@[args[1]->pr_fname, args[0]->pr_lwpid] = count();
}
