sdt:sched::sched_switch
/args[1] != args[5]/
{
	printf("%s -> %s (%d)\n", args[0], args[4], arg5);
}

sdt:sched::sched_process_exec
{
	trace(stringof(args[0]));
	trace(args[1]);
}
