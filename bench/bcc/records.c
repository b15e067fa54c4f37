/* Hand-written bcc baseline for records: syscall::getppid:entry /pid == TARGET/ { trace(arg0); }
 * One 16-byte record per call through a ring buffer; failed reservations are counted. */
#include <uapi/linux/ptrace.h>

struct rec_t {
	u32 pid;
	u32 cpu;
	u64 arg0;
};
BPF_RINGBUF_OUTPUT(events, 1 << 10); /* 4 MB, dtrace-nb's default bufsize */
BPF_PERCPU_ARRAY(drops, u64, 1);

RAW_TRACEPOINT_PROBE(sys_enter)
{
	if (ctx->args[1] != 110)
		return 0;
	u32 pid = bpf_get_current_pid_tgid() >> 32;
	if (pid != TARGET)
		return 0;
	struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
	struct rec_t *r = events.ringbuf_reserve(sizeof(*r));
	if (!r) {
		u32 z = 0;
		u64 *d = drops.lookup(&z);
		if (d)
			(*d)++;
		return 0;
	}
	r->pid = pid;
	r->cpu = bpf_get_smp_processor_id();
	bpf_probe_read_kernel(&r->arg0, sizeof(r->arg0), &regs->di);
	events.ringbuf_submit(r, 0);
	return 0;
}
