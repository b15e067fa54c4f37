/*
 * Ground truth for the pid and usdt providers: `userprobes N` calls dtnb_work(i) exactly
 * N times (i = 0..N-1, returning 2*i+1), dtnb_leaf() exactly once, and fires the USDT
 * probes dtnb:loop (i, "tick" on the stack) N times, dtnb:guarded (i) N times when its semaphore is set
 * (i.e. only while a tracer has it enabled), and dtnb:done (N) once.
 */
#define _SDT_HAS_SEMAPHORES 1
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>

/* With semaphores on, every probe has one; only dtnb:guarded's is tested by the code. */
unsigned short dtnb_guarded_semaphore __attribute__((section(".probes"), used));
unsigned short dtnb_loop_semaphore __attribute__((section(".probes"), used));
unsigned short dtnb_done_semaphore __attribute__((section(".probes"), used));

__attribute__((noinline)) long dtnb_work(long i)
{
	__asm__ volatile("" ::: "memory");
	return 2 * i + 1;
}

__attribute__((noinline)) long dtnb_leaf(long a, long b, long c)
{
	__asm__ volatile("" ::: "memory");
	return a + b + c;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 10;
	long sum = 0, guarded = 0;
	/* on the stack, so the page is present when a tracer copies it (copyinstr cannot
	 * fault pages in) */
	char tick[8] = "tick";
	for (long i = 0; i < n; i++) {
		sum += dtnb_work(i);
		DTRACE_PROBE2(dtnb, loop, i, tick);
		if (dtnb_guarded_semaphore) {
			guarded++;
			DTRACE_PROBE1(dtnb, guarded, i);
		}
	}
	sum += dtnb_leaf(1, 2, 3);
	DTRACE_PROBE1(dtnb, done, n);
	printf("userprobes: n %ld sum %ld guarded %ld\n", n, sum, guarded);
	return 0;
}
