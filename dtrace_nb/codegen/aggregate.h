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
