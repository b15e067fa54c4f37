/* Hand-written bcc baseline: syscall::getppid:entry { @[execname] = count(); }
 * The cheapest attach point (raw tracepoint sys_enter), filtered by syscall number. */
#include <uapi/linux/ptrace.h>

struct key_t {
	char comm[16];
};
BPF_HASH(counts, struct key_t, u64);

RAW_TRACEPOINT_PROBE(sys_enter)
{
	if (ctx->args[1] != 110) /* __NR_getppid on x86-64 */
		return 0;
	struct key_t key = {};
	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	counts.increment(key);
	return 0;
}
