/* dtrace-nb: speculative tracing (DTrace's speculation(), speculate(), commit(), discard()).
 *
 * The kernel only hands out speculation ids: slot i of dtnb_spec is 1 while id i+1 is in
 * use. Records of a speculating clause carry the id; the consumer holds them back until a
 * commit record (print them) or a discard record (drop them). Ring buffer order is the
 * order of reservation, so a commit is always seen after the records it commits.
 */

BPF_ARRAY(dtnb_spec, u64, DT_NSPEC);

static __always_inline s32 dt_speculation(void)
{
	for (u32 i = 0; i < DT_NSPEC && i < 256; i++) {
		u32 k = i;
		u64 *st = dtnb_spec.lookup(&k);
		if (st && __sync_val_compare_and_swap(st, 0, 1) == 0)
			return (s32)(i + 1);
	}
	dt_drop(DT_DROP_SPEC);
	return 0;
}

static __always_inline void dt_spec_release(u32 id)
{
	if (id == 0)
		return;
	u32 k = id - 1;
	u64 *st = dtnb_spec.lookup(&k);
	if (st)
		*st = 0;
}
