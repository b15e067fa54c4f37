/* dtrace-nb: inet_ntoa(), inet_ntoa6(), inet_ntop() and link_ntop() in BPF C, included
 * when a program uses them (after strings.h: DT_STRSIZE, DT_STRBUF and DT_SMASK).
 */

/* Network and link addresses are formatted into a 64-byte scratch `t` (the longest,
 * an InfiniBand address, is 59 characters), then cut to strsize by dt_strout. */
#define DT_TMASK 63

static __always_inline int dt_put_dotted(char *t, int o, const u8 *b)
{
	#pragma clang loop unroll(disable)
	for (int k = 0; k < 4; k++) {
		u8 v = b[k];
		if (v >= 100)
			t[o++ & DT_TMASK] = '0' + v / 100;
		if (v >= 10)
			t[o++ & DT_TMASK] = '0' + (v / 10) % 10;
		t[o++ & DT_TMASK] = '0' + v % 10;
		if (k < 3)
			t[o++ & DT_TMASK] = '.';
	}
	return o;
}

static __always_inline char dt_hexdigit(u32 d)
{
	return d < 10 ? '0' + d : 'a' + d - 10;
}

/* The first n characters of t as a string of at most strsize - 1 characters. */
static __always_inline void dt_strout(char *dst, char *t, int n)
{
	int i = 0;
	t[n & DT_TMASK] = 0;
	#pragma clang loop unroll(disable)
	for (; i < DT_STRSIZE - 1 && i < 63; i++) {
		char c = t[i];
		/* testing each byte also keeps clang from turning the loop into memcpy() */
		if (c == 0)
			break;
		dst[i] = c;
	}
	dst[i & DT_SMASK] = 0;
}

/* inet_ntoa(): a dotted quad from the 4 bytes at a kernel address (network order). */
static __always_inline int dt_inet_ntoa(char *dst, const void *addr)
{
	u8 b[4] = {};
	char t[64];
	if (bpf_probe_read_kernel(b, 4, addr) < 0)
		return -1;
	dt_strout(dst, t, dt_put_dotted(t, 0, b));
	return 0;
}

/* An IPv6 address (16 bytes, network order) as RFC 5952 text: groups in hex without
 * leading zeros, the first longest run of two or more zero groups as "::". An
 * IPv4-compatible (::a.b.c.d, not :: or ::1) or IPv4-mapped (::ffff:a.b.c.d) address
 * ends in a dotted quad; `prefixed` 0 (inet_ntoa6's default) prints the quad alone. */
static __always_inline int dt_inet_ntoa6(char *dst, const void *addr, int prefixed)
{
	/* values read back from map memory (dst's unused upper half: the caller gives
	 * DT_STRBUF + 64 bytes at least) are unknown to the verifier, so the paths through
	 * the zero-run search and through each group merge instead of multiplying */
	volatile s32 *v = (volatile s32 *)(dst + DT_STRBUF);
	u8 b[16] = {};
	char t[64];
	u32 g[8];
	int o = 0;
	if (bpf_probe_read_kernel(b, 16, addr) < 0)
		return -1;
	#pragma clang loop unroll(full)
	for (int k = 0; k < 8; k++) {
		g[k] = (u32)b[2 * k] << 8 | b[2 * k + 1];
		v[4 + k] = g[k];
	}
	int high_zero = (g[0] | g[1] | g[2] | g[3] | g[4]) == 0;
	int mapped = high_zero && g[5] == 0xffff;
	int compat = high_zero && g[5] == 0 && (g[6] != 0 || g[7] > 1);
	if (mapped || compat) {
		if (prefixed) {
			t[0] = ':';
			t[1] = ':';
			o = 2;
			if (mapped) {
				t[2] = 'f'; t[3] = 'f'; t[4] = 'f'; t[5] = 'f'; t[6] = ':';
				o = 7;
			}
		}
		dt_strout(dst, t, dt_put_dotted(t, o, b + 12));
		return 0;
	}
	int best = -1, bestlen = 1, run = 0;
	#pragma clang loop unroll(full)
	for (int k = 0; k < 8; k++) {
		run = g[k] == 0 ? run + 1 : 0;
		if (run > bestlen) {
			bestlen = run;
			best = k - run + 1;
		}
	}
	v[0] = best;
	v[1] = bestlen;
	best = v[0];
	bestlen = v[1] & 15;
	#pragma clang loop unroll(disable)
	for (int k = 0; k < 8; k++) {
		u32 x = (u32)v[4 + (k & 7)];
		if (best >= 0 && k >= best && k < best + bestlen) {
			if (k == best) {
				t[o++ & DT_TMASK] = ':';
				t[o++ & DT_TMASK] = ':';
			}
		} else {
			if (k > 0 && k != best + bestlen)
				t[o++ & DT_TMASK] = ':';
			int started = 0;
			#pragma clang loop unroll(full)
			for (int sh = 12; sh >= 0; sh -= 4) {
				u32 d = (x >> sh) & 0xf;
				if (d || started || sh == 0) {
					t[o++ & DT_TMASK] = dt_hexdigit(d);
					started = 1;
				}
			}
		}
		/* the paths of this group merge here, at the loop's back edge */
		v[2] = o;
		o = v[2] & DT_TMASK;
	}
	dt_strout(dst, t, o);
	return 0;
}

/* link_ntop(): n bytes at a kernel address as two-digit hex pairs joined by ':'. */
static __always_inline int dt_link_ntop(char *dst, const void *addr, int n)
{
	u8 b[20] = {};
	char t[64];
	int o = 0;
	if (bpf_probe_read_kernel(b, n == 6 ? 6 : 20, addr) < 0)
		return -1;
	#pragma clang loop unroll(disable)
	for (int k = 0; k < 20; k++) {
		if (k >= n)
			break;
		if (k > 0)
			t[o++ & DT_TMASK] = ':';
		t[o++ & DT_TMASK] = dt_hexdigit(b[k] >> 4);
		t[o++ & DT_TMASK] = dt_hexdigit(b[k] & 0xf);
	}
	dt_strout(dst, t, o);
	return 0;
}

/* The text of an address member of a provider's translated argument (ipinfo_t's
 * ip_saddr...), as dtrace-utils' translators make it: inet_ntoa() of `v4` (an IPv4
 * address as it lies in memory, network order) for AF_INET, inet_ntoa6() of the 16
 * bytes at kernel address `v6` for AF_INET6, "<null>" for DT_AF_NO_HEADER (the
 * translator of a NULL header: ipv4info_t of an IPv6 packet), else "<unknown>". */
#define DT_AF_INET 2
#define DT_AF_INET6 10
#define DT_AF_NO_HEADER 0xffff

static __always_inline void dt_inet_text(char *dst, u32 family, u32 v4, const void *v6)
{
	char t[64];
	if (family == DT_AF_INET) {
		u8 b[4];
		__builtin_memcpy(b, &v4, 4);
		dt_strout(dst, t, dt_put_dotted(t, 0, b));
		return;
	}
	if (family == DT_AF_NO_HEADER) {
		__builtin_memcpy(t, "<null>", 7);
		dt_strout(dst, t, 6);
		return;
	}
	if (family != DT_AF_INET6 || dt_inet_ntoa6(dst, v6, 0) < 0) {
		__builtin_memcpy(t, "<unknown>", 10);
		dt_strout(dst, t, 9);
	}
}
