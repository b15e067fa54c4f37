/* dtrace-nb: reporting a run-time fault (DTrace's dtrace_error()).
 *
 * A faulting clause stops where it is, its record is discarded, and an error record (epid
 * 0) tells the consumer which enabled probe faulted, how and where; the consumer prints
 * DTrace's "error on enabled probe" message and fires the ERROR probe.
 */

struct dt_errrec {
	u32 epid;	/* 0: an error record */
	u32 cpu;
	u32 pidx;
	u32 spec;
	u64 mask;
	u64 fault_epid;
	u64 fault;
	u64 addr;
	u64 action;
};

static __always_inline void dt_error(u32 epid, u32 pidx, u32 fault, u64 addr, u32 action)
{
	struct dt_errrec *e = dtnb_rb.ringbuf_reserve(sizeof(struct dt_errrec));
	if (!e) {
		dt_drop(DT_DROP_REC);
		return;
	}
	e->epid = 0;
	e->cpu = bpf_get_smp_processor_id();
	e->pidx = pidx;
	e->spec = 0;
	e->mask = 0;
	e->fault_epid = epid;
	e->fault = fault;
	e->addr = addr;
	e->action = action;
	dtnb_rb.ringbuf_submit(e, 0);
}
