BEGIN
{
	this->p = "/usr/lib/x86_64/libc.so.6";
	printf("%s %s %d %d\n", basename(this->p), dirname(this->p), index(this->p, "lib"),
	    rindex(this->p, "lib"));
	printf("%s %s %s %s\n", substr(this->p, 5, 3), strchr(this->p, '/'), strstr(this->p, "x86"),
	    toupper(lltostr(255, 16)));
	printf("%d %s\n", strtoll("-77"), this->p == "/usr" ? "yes" : "no");
	exit(0);
}
