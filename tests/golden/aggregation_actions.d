#pragma D option quiet
#pragma D option aggsortrev

profile:::tick-1s
{
	@c[cpu] = count();
	@s[cpu] = sum(1);
}

END
{
	normalize(@c, 2);
	printa("%d %@d %@d\n", @c, @s);
	trunc(@s, 3);
	denormalize(@c);
	clear(@c);
}
