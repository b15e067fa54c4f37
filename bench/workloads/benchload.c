/*
 * The benchmarks' workload: measures itself, so the tracer's start-up and shutdown stay
 * out of the per-call numbers.
 *
 *   benchload loop N CPU   pin to CPU, make N getppid(2) calls through syscall(2), print
 *                          "benchload ns_per_call=X" (wall time of the loop / N)
 *   benchload keys N CPU   the same with the call number i as the first argument
 *                          (getppid ignores it; a tracer sees N distinct arg0 values)
 *   benchload stamp        print "benchload start_ns=T" (CLOCK_MONOTONIC) and exit: a
 *                          tracer's -c child starts once its probes are live
 *
 * CPU -1 leaves the process unpinned.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void pin(int cpu)
{
	cpu_set_t set;
	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0) {
		perror("benchload: sched_setaffinity");
		exit(2);
	}
}

static __attribute__((noinline)) void loop(long n, int keys)
{
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid, keys ? i : 0);
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "stamp") == 0) {
		printf("benchload start_ns=%lld\n", now_ns());
		return 0;
	}
	if (argc != 4 || (strcmp(argv[1], "loop") != 0 && strcmp(argv[1], "keys") != 0)) {
		fprintf(stderr, "usage: benchload loop|keys N CPU | benchload stamp\n");
		return 2;
	}
	long n = atol(argv[2]);
	pin(atoi(argv[3]));
	long long t0 = now_ns();
	loop(n, strcmp(argv[1], "keys") == 0);
	long long t1 = now_ns();
	printf("benchload ns_per_call=%.2f calls=%ld\n", (double)(t1 - t0) / (n ? n : 1), n);
	fflush(stdout);
	return 0;
}
