/* The floor: an empty program on the attach point dtrace-nb's syscall provider uses. */
RAW_TRACEPOINT_PROBE(sys_enter)
{
	return 0;
}
