syscall::read:entry
{
	self->ts = timestamp;
}

syscall::read:return
/self->ts/
{
	@lat = quantize(timestamp - self->ts);
	@avg[execname] = avg(timestamp - self->ts);
	self->ts = 0;
}
