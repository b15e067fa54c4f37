/* dtrace-nb: bucket functions of the histogram aggregations beyond quantize().
 *
 * lquantize(v, base, limit, step): bucket 0 holds v < base, bucket i+1 holds
 * [base + i*step, base + (i+1)*step), bucket levels+1 holds v >= limit
 * (levels = (limit - base) / step), as DTrace's dtrace_aggregate_lquantize.
 */

static __always_inline u32 dt_lquantize_bucket(s64 v, s64 base, u32 levels, s64 step)
{
	if (v < base)
		return 0;
	u64 i = ((u64)(v - base)) / (u64)step;
	if (i >= levels)
		return levels + 1;
	return (u32)i + 1;
}

/* llquantize(v, factor, low, high, nsteps), as DTrace's
 * dtrace_aggregate_llquantize_bucket: bucket 0 holds v < factor^low; each order of
 * magnitude m in low..high then has nsteps buckets (fewer while factor^(m+1) < nsteps),
 * less those that overlap the magnitude below; the last bucket holds v >= factor^(high+1).
 * The parameters are constants, so clang unrolls both loops. Multiplications wrap as
 * unsigned (the overflow test relies on it) and the division is unsigned (value >= last). */
static __always_inline u32 dt_llquantize_bucket(s64 value, u32 factor, u32 low, u32 high,
						u32 nsteps)
{
	s64 this = 1, last, next;
	u32 base = 1, order;

	for (order = 0; order < low && order < 64; order++)
		this = (s64)((u64)this * factor);
	if (value < (last = this))
		return 0;
	this = (s64)((u64)this * factor);
	for (; order <= high && order < 64; order++) {
		s64 nbuckets = this > (s64)nsteps ? (s64)nsteps : this;

		next = (s64)((u64)this * factor);
		if (next < this)
			value = this - 1;
		if (value < this)
			return base + (u32)((u64)(value - last) / (u64)(this / nbuckets));
		base += (u32)(nbuckets - nbuckets / factor);
		last = this;
		this = next;
	}
	return base;
}
