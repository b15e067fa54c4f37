/*
 * Ground truth for kernel tests: makes exactly the system calls its mode names, each
 * through syscall(2) so libc can neither add, merge nor substitute calls.
 *
 *   sysload [-v] MODE N
 *
 *   getppid N   N getppid calls
 *   read N      N read(2) calls on /dev/zero, call i asking for 1 << (i % 8) bytes
 *               (sizes 1..128; N/8 of each when N is a multiple of 8)
 *   mixed N     N getppid calls, then N reads as above
 *   enoent N    N openat(AT_FDCWD, "/nonexistent/dtrace-nb-test", O_RDONLY), each ENOENT
 *   write N     N one-byte write(2) calls to /dev/null
 *   sleep MS    one nanosleep(2) of MS milliseconds (more only if a signal interrupts it)
 *   spin MS     burn the CPU for MS milliseconds without system calls (the clock is read
 *               through the vDSO, which makes none)
 *   getppid-for MS  getppid calls as fast as possible for MS milliseconds (the clock is
 *               read through the vDSO every 1,024 calls), then, in teardown, prints
 *               "getppid C" on stdout: C, the number of calls made, is the ground truth
 *
 * Each run has three phases: setup (open the file the mode needs, with openat), the
 * measured phase (only the calls above), teardown (close). Nothing else is printed to stdout;
 * -v prints one line to stderr after teardown. Exit status 0, or 2 on a usage or setup
 * error. The dynamic loader's own calls (openat, read of libc.so.6's ELF header, mmap...)
 * happen before main: tests tell them apart by choosing calls the loader never makes
 * (getppid, nanosleep, write, openat of the test path) or by argument (read sizes <= 128).
 *
 * The measured loops are separate, never-inlined functions so that stack and uprobe tests
 * can find them by name: do_getppid, do_read, do_enoent, do_write, do_sleep, do_spin.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static const char ENOENT_PATH[] = "/nonexistent/dtrace-nb-test";
static char buf[128];

static NOINLINE void do_getppid(long n)
{
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
}

static NOINLINE void do_read(int fd, long n)
{
	for (long i = 0; i < n; i++)
		syscall(SYS_read, fd, buf, (size_t)1 << (i % 8));
}

static NOINLINE void do_enoent(long n)
{
	for (long i = 0; i < n; i++)
		syscall(SYS_openat, AT_FDCWD, ENOENT_PATH, O_RDONLY);
}

static NOINLINE void do_write(int fd, long n)
{
	for (long i = 0; i < n; i++)
		syscall(SYS_write, fd, "x", (size_t)1);
}

static NOINLINE void do_sleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L }, rem;

	while (syscall(SYS_nanosleep, &ts, &rem) != 0 && errno == EINTR)
		ts = rem;
}

static long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no system call */
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static NOINLINE long do_getppid_for(long ms)
{
	long end = now_ns() + ms * 1000000L, calls = 0;

	while (now_ns() < end)
		for (int i = 0; i < 1024; i++, calls++)
			syscall(SYS_getppid);
	return calls;
}

static NOINLINE unsigned long do_spin(long ms)
{
	long end = now_ns() + ms * 1000000L;
	volatile unsigned long x = 0;

	while (now_ns() < end)
		for (int i = 0; i < 20000; i++)
			x += i;
	return x;
}

static int open_or_die(const char *path, int flags)
{
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, flags);

	if (fd < 0) {
		fprintf(stderr, "sysload: cannot open %s: %s\n", path, strerror(errno));
		exit(2);
	}
	return fd;
}

static int usage(void)
{
	fprintf(stderr, "usage: sysload [-v] getppid|read|mixed|enoent|write|sleep|spin|"
		"getppid-for N\n");
	return 2;
}

int main(int argc, char **argv)
{
	int verbose = 0, fd = -1;
	long made = -1;

	if (argc > 1 && !strcmp(argv[1], "-v")) {
		verbose = 1;
		argc--;
		argv++;
	}
	if (argc != 3)
		return usage();

	const char *mode = argv[1];
	char *end;
	errno = 0;
	long n = strtol(argv[2], &end, 10);
	if (errno || end == argv[2] || *end || n < 0) {
		fprintf(stderr, "sysload: N must be a non-negative integer, not '%s'\n", argv[2]);
		return 2;
	}

	/* setup */
	if (!strcmp(mode, "read") || !strcmp(mode, "mixed"))
		fd = open_or_die("/dev/zero", O_RDONLY);
	else if (!strcmp(mode, "write"))
		fd = open_or_die("/dev/null", O_WRONLY);

	/* measured phase */
	if (!strcmp(mode, "getppid")) {
		do_getppid(n);
	} else if (!strcmp(mode, "read")) {
		do_read(fd, n);
	} else if (!strcmp(mode, "mixed")) {
		do_getppid(n);
		do_read(fd, n);
	} else if (!strcmp(mode, "enoent")) {
		do_enoent(n);
	} else if (!strcmp(mode, "write")) {
		do_write(fd, n);
	} else if (!strcmp(mode, "sleep")) {
		do_sleep(n);
	} else if (!strcmp(mode, "spin")) {
		do_spin(n);
	} else if (!strcmp(mode, "getppid-for")) {
		made = do_getppid_for(n);
	} else {
		fprintf(stderr, "sysload: unknown mode '%s'\n", mode);
		return usage();
	}

	/* teardown */
	if (fd >= 0)
		syscall(SYS_close, fd);
	if (made >= 0) {
		printf("getppid %ld\n", made);
		fflush(stdout);
	}
	if (verbose)
		fprintf(stderr, "sysload: pid %d mode %s n %ld done\n", (int)getpid(), mode, n);
	return 0;
}
