int total;

BEGIN
{
	x = 5;
	y = 0;
	x *= 3;
	x -= 1;
	x <<= 2;
	if (x > 2) {
		y++;
	} else {
		y--;
	}
	total += x;
	printf("%d %d %d %d\n", x, ++y, y--, total);
	exit(0);
}
