profile:::profile-97
{
	@k[stack()] = count();
	@u[ustack(5)] = count();
}

syscall::write:entry
{
	stack(4);
	ustack();
}
