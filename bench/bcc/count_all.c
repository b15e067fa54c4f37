/* Hand-written bcc baseline: syscall:::entry { @[execname] = count(); } */
#include <uapi/linux/ptrace.h>

struct key_t {
	char comm[16];
};
BPF_HASH(counts, struct key_t, u64);

RAW_TRACEPOINT_PROBE(sys_enter)
{
	struct key_t key = {};
	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	counts.increment(key);
	return 0;
}
