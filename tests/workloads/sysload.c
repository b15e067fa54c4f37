/*
 * Ground truth for kernel tests: makes exactly the system calls its mode names, each
 * through syscall(2) so libc can neither add nor merge calls.
 *
 *   sysload getppid N   N getppid calls
 *   sysload read N      N read(2) calls on /dev/zero, call i asking for 1 << (i % 8) bytes
 *   sysload mixed N     both of the above
 *   sysload enoent N    N openat() calls of a missing file (each fails with ENOENT)
 *   sysload write N     N one-byte write(2) calls to /dev/null
 *   sysload sleep MS    sleep MS milliseconds (nanosleep)
 *   sysload spin MS     burn the CPU for MS milliseconds without system calls
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static char buf[256];

static void do_getppid(long n)
{
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
}

static void do_read(long n)
{
	int fd = open("/dev/zero", O_RDONLY);
	if (fd < 0) {
		perror("open /dev/zero");
		exit(2);
	}
	for (long i = 0; i < n; i++)
		syscall(SYS_read, fd, buf, (size_t)1 << (i % 8));
	close(fd);
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: sysload getppid|read|mixed|enoent|write|sleep|spin N\n");
		return 2;
	}
	const char *mode = argv[1];
	long n = atol(argv[2]);

	if (!strcmp(mode, "getppid")) {
		do_getppid(n);
	} else if (!strcmp(mode, "read")) {
		do_read(n);
	} else if (!strcmp(mode, "mixed")) {
		do_getppid(n);
		do_read(n);
	} else if (!strcmp(mode, "enoent")) {
		for (long i = 0; i < n; i++)
			syscall(SYS_openat, AT_FDCWD, "/nonexistent/dtrace-nb-test", O_RDONLY);
	} else if (!strcmp(mode, "write")) {
		int fd = open("/dev/null", O_WRONLY);
		for (long i = 0; i < n; i++)
			syscall(SYS_write, fd, "x", 1);
		close(fd);
	} else if (!strcmp(mode, "sleep")) {
		struct timespec ts = { n / 1000, (n % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	} else if (!strcmp(mode, "spin")) {
		long end = now_ms() + n;
		volatile unsigned long x = 0;
		while (now_ms() < end)
			for (int i = 0; i < 100000; i++)
				x += i;
	} else {
		fprintf(stderr, "sysload: unknown mode %s\n", mode);
		return 2;
	}
	return 0;
}
