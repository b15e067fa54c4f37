/* dtrace-nb: fixed helpers included at the top of every generated program. */

#define DT_DROP_AGG 0   /* aggregation map full */
#define DT_DROP_REC 1   /* ring buffer full */
#define DT_DROP_DYN 2   /* dynamic variable space full */
#define DT_DROP_SPEC 3  /* speculation buffers full */
#define DT_NDROPS 4

#define DT_QUANTIZE_ZERO 63

/* Counters of lost data, per CPU, read and reported by the consumer. */
BPF_PERCPU_ARRAY(dtnb_drops, u64, DT_NDROPS);
/* Session state: slot 0 is DTrace's activity: inactive while probes are being attached and
 * BEGIN runs (no other probe's clauses run then), active once the consumer has seen BEGIN
 * through, exiting once exit() has been called (DTrace's "draining": only END and ERROR run).
 * Slot 1 is wall-clock time minus bpf_ktime_get_ns(); slots 2 and 3 are $target and $pid.
 * The consumer sets 1-3 before any probe fires. $target and $pid are read here rather than
 * written into the C so that the program text, and so its compiled object, is the same
 * from one run to the next (runtime/compiler.py caches objects by text). */
BPF_ARRAY(dtnb_state, u64, 4);
#define DT_STATE_ACTIVITY 0
#define DT_INACTIVE 0
#define DT_ACTIVE 1
#define DT_EXITING 2
#define DT_STATE_WALLTIME 1
#define DT_STATE_TARGET 2
#define DT_STATE_PID 3

/* Per-CPU cells the string helpers keep loop state in. Values that pass through memory
 * are unknown to the verifier, so the paths of a data-dependent loop converge instead of
 * multiplying through the rest of the program ("laundering"). */
struct dt_cells { s64 c[16]; };
BPF_PERCPU_ARRAY(dtnb_cells, struct dt_cells, 1);
#define DT_CELL_LAUNDER 0

static __always_inline volatile s64 *dt_cells(void)
{
	u32 k = 0;
	struct dt_cells *c = dtnb_cells.lookup(&k);
	return c ? (volatile s64 *)c->c : 0;
}

static __always_inline s64 dt_launder(s64 v)
{
	volatile s64 *c = dt_cells();
	if (!c)
		return 0;
	c[DT_CELL_LAUNDER] = v;
	return c[DT_CELL_LAUNDER];
}

static __always_inline void dt_drop(u32 which)
{
	u64 *c = dtnb_drops.lookup(&which);
	if (c)
		(*c)++;
}

static __always_inline u64 dt_activity(void)
{
	u32 zero = DT_STATE_ACTIVITY;
	u64 *st = dtnb_state.lookup(&zero);
	return st ? *st : DT_INACTIVE;
}

static __always_inline u64 dt_state(u32 slot)
{
	u64 *v = dtnb_state.lookup(&slot);
	return v ? *v : 0;
}

static __always_inline void dt_set_exiting(void)
{
	u32 zero = DT_STATE_ACTIVITY;
	u64 *st = dtnb_state.lookup(&zero);
	if (st)
		*st = DT_EXITING;
}

static __always_inline u64 dt_kread_u64(const void *p)
{
	u64 v = 0;
	bpf_probe_read_kernel(&v, sizeof(v), p);
	return v;
}

/* Leave a clause for its fault handler (codegen/emit.py), noting what faulted, at which
 * address and in which action; dt_flt* are the function's locals. */
#define DT_FAULT(kind, addr, act, handler) \
	do { dt_flt = (kind); dt_flt_addr = (u64)(addr); dt_flt_act = (act); goto handler; } while (0)

/* Index of the highest set bit plus one (0 for 0), without loops. */
static __always_inline u32 dt_fls64(u64 v)
{
	u32 r = 0;
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { v >>= 1; r += 1; }
	return r + (v ? 1 : 0);
}

/* DTrace's quantize() bucket: 63 is zero, 63+k holds [2^(k-1), 2^k), 63-k the negatives. */
static __always_inline u32 dt_quantize_bucket(s64 v)
{
	if (v == 0)
		return DT_QUANTIZE_ZERO;
	if (v > 0)
		return DT_QUANTIZE_ZERO + dt_fls64((u64)v);
	u32 f = dt_fls64(-(u64)v);
	return f >= DT_QUANTIZE_ZERO ? 0 : DT_QUANTIZE_ZERO - f;
}

/* BPF has only unsigned division: signed division and modulo with C's truncation. */
static __always_inline s64 dt_sdiv(s64 a, s64 b)
{
	if (b == 0)
		return 0;
	u64 ua = a < 0 ? -(u64)a : (u64)a;
	u64 ub = b < 0 ? -(u64)b : (u64)b;
	u64 q = ua / ub;
	return ((a < 0) != (b < 0)) ? -(s64)q : (s64)q;
}

static __always_inline s64 dt_smod(s64 a, s64 b)
{
	if (b == 0)
		return 0;
	u64 ua = a < 0 ? -(u64)a : (u64)a;
	u64 ub = b < 0 ? -(u64)b : (u64)b;
	u64 r = ua % ub;
	return a < 0 ? -(s64)r : (s64)r;
}

/* Compare two NUL-terminated buffers of at most n bytes, as strcmp() does. */
static __always_inline int dt_strcmp(const char *a, const char *b, u32 n)
{
	for (u32 i = 0; i < n && i < 256; i++) {
		char ca = a[i], cb = b[i];
		if (ca != cb)
			return (unsigned char)ca < (unsigned char)cb ? -1 : 1;
		if (ca == 0)
			return 0;
	}
	return 0;
}

/* ppid: the task_struct offsets come from the running kernel's BTF (the runtime passes
 * them as -D flags), because the installed headers may be of another kernel version. */
#if defined(DT_TASK_REAL_PARENT_OFF) && defined(DT_TASK_TGID_OFF)
static __always_inline s32 dt_ppid(void)
{
	u64 task = bpf_get_current_task();
	u64 parent = dt_kread_u64((void *)(task + DT_TASK_REAL_PARENT_OFF));
	s32 tgid = 0;
	bpf_probe_read_kernel(&tgid, sizeof(tgid), (void *)(parent + DT_TASK_TGID_OFF));
	return tgid;
}
/* progenyof(pid): whether the current process is pid or descends from it. */
static __always_inline int dt_progenyof(s32 pid)
{
	u64 task = bpf_get_current_task();
	for (int i = 0; i < 32; i++) {
		s32 tgid = 0;
		bpf_probe_read_kernel(&tgid, sizeof(tgid), (void *)(task + DT_TASK_TGID_OFF));
		if (tgid == pid)
			return 1;
		if (tgid <= 1)
			return 0;
		task = dt_kread_u64((void *)(task + DT_TASK_REAL_PARENT_OFF));
	}
	return 0;
}
#else
static __always_inline s32 dt_ppid(void)
{
	return -1;
}
static __always_inline int dt_progenyof(s32 pid)
{
	return 0;
}
#endif

#ifdef DT_TASK_SUM_EXEC_OFF
static __always_inline u64 dt_vtimestamp(void)
{
	return dt_kread_u64((void *)(bpf_get_current_task() + DT_TASK_SUM_EXEC_OFF));
}
#else
static __always_inline u64 dt_vtimestamp(void)
{
	return 0;
}
#endif

static __always_inline u64 dt_walltime_offset(void)
{
	u32 k = DT_STATE_WALLTIME;
	u64 *v = dtnb_state.lookup(&k);
	return v ? *v : 0;
}

/* Frames on the current kernel (flags 0) or user (BPF_F_USER_STACK) stack. */
static __always_inline u32 dt_stackdepth(void *ctx, u64 flags)
{
	u64 frames[32];
	long n = bpf_get_stack(ctx, frames, sizeof(frames), flags);
	return n > 0 ? (u32)((u64)n / 8) : 0;	/* unsigned: no sdiv on BPF (v3) */
}

/* stddev(): add x*x to a 128-bit sum of squares kept as two u64 words (low, high). */
static __always_inline void dt_add_square(u64 *sq, s64 x)
{
	u64 a = x < 0 ? -(u64)x : (u64)x;
	u64 al = a & 0xffffffffULL, ah = a >> 32;
	u64 mid = ah * al;
	u64 lo = al * al;
	u64 lo2 = lo + (mid << 33);
	u64 hi = ah * ah + (mid >> 31) + (lo2 < lo);
	u64 s = sq[0] + lo2;
	sq[1] += hi + (s < lo2);
	sq[0] = s;
}
