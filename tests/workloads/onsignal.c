/*
 * Ground truth for the order in which probes come alive: `onsignal` sleeps 1 ms at a time
 * until it gets SIGUSR1 (at most 10 s), then calls dtnb_signalled() exactly once and exits
 * 0 (1 if no signal came). A tracer whose clause on nanosleep's return raises the signal
 * sees that call only if its probe on dtnb_signalled was live before the first return.
 */
#include <signal.h>
#include <stdio.h>
#include <time.h>

static volatile sig_atomic_t signalled;

__attribute__((noinline)) int dtnb_signalled(int n)
{
	__asm__ volatile("" ::: "memory");
	return n + 1;
}

static void on_usr1(int sig)
{
	(void)sig;
	signalled = 1;
}

int main(void)
{
	struct timespec ms = {0, 1000000};
	signal(SIGUSR1, on_usr1);
	printf("onsignal: ready\n");
	fflush(stdout);
	for (int i = 0; i < 10000 && !signalled; i++)
		nanosleep(&ms, NULL);
	if (!signalled)
		return 1;
	return dtnb_signalled(41) == 42 ? 0 : 2;
}
