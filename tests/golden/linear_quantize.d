profile:::profile-97
{
	@l = lquantize(arg0 & 0xff, 0, 256, 16);
	@ll = llquantize(timestamp % 100000, 10, 0, 5, 10);
	@mn = min(cpu);
	@mx = max(cpu);
	@sd = stddev(timestamp % 1000);
}
