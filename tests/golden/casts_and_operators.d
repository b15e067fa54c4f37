BEGIN
{
	x = (char)300;
	y = x > 0 ? 1 : 2;
	z = (unsigned)-7 >> 28;
	w = -7 / 2 + -7 % 2;
	printf("%d %d %d %d %d %d\n", x, y, z, w, 2 && 3 || 0, 1 ^^ 1);
	printf("%d %d %x\n", sizeof(int), ~0 & 0xf, ntohl(0x11223344));
	exit(0);
}
