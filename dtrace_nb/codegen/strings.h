/* dtrace-nb: D's string subroutines in BPF C.
 *
 * Strings live in fixed buffers: DT_STRSIZE is D's strsize option, DT_STRBUF the next power
 * of two (so an offset can be bounded with a mask the verifier understands). A result
 * buffer is 2 * DT_STRBUF bytes, so writing up to DT_STRBUF bytes at any masked offset
 * stays inside it; results are cut at DT_STRSIZE - 1 characters.
 * Sources are any BPF-readable memory (map values, the stack, ring buffer records).
 */

#define DT_SMASK (DT_STRBUF - 1)

static __always_inline u32 dt_strlen(const char *s)
{
	u32 i = 0;
	#pragma clang loop unroll(disable)
	for (; i < DT_STRSIZE - 1; i++) {
		if (s[i] == 0)
			break;
	}
	return (u32)dt_launder(i);
}

/* Copy a NUL-terminated string into dst (DT_STRSIZE bytes); returns its length. */
static __always_inline u32 dt_strcpy(char *dst, const char *src)
{
	long n = bpf_probe_read_kernel_str(dst, DT_STRSIZE, src);
	if (n <= 0) {
		dst[0] = 0;
		return 0;
	}
	return (u32)(n - 1);
}

static __always_inline void dt_strjoin(char *dst, const char *a, const char *b)
{
	u32 n = dt_strcpy(dst, a) & DT_SMASK;
	bpf_probe_read_kernel_str(dst + n, DT_STRSIZE, b);
	dst[DT_STRSIZE - 1] = 0;
}

/* D's substr(s, index, length): negative index counts from the end; a negative length
 * stops that many characters before the end; out-of-range parts are clipped. */
static __always_inline void dt_substr(char *dst, const char *s, s64 index, s64 len, int has_len)
{
	s64 slen = dt_strlen(s);
	s64 start = index;
	if (start < 0) {
		start += slen;
		if (start < 0) {
			if (has_len && len >= 0) {
				len += start;
				if (len < 0)
					len = 0;
			}
			start = 0;
		}
	}
	if (start > slen)
		start = slen;
	s64 count = slen - start;
	if (has_len) {
		if (len < 0) {
			len = slen - start + len;
			if (len < 0)
				len = 0;
		}
		if (len < count)
			count = len;
	}
	u32 off = (u32)start & DT_SMASK;
	u32 i = 0;
	#pragma clang loop unroll(disable)
	for (; i < DT_STRSIZE - 1; i++) {
		char c = s[(off + i) & DT_SMASK];
		/* testing each byte also keeps clang from turning the loop into memmove() */
		if ((s64)i >= count || c == 0)
			break;
		dst[i] = c;
	}
	dst[i & DT_SMASK] = 0;
}

/* Needles are compared on their first DT_NEEDLE bytes: the verifier walks every
 * (position, needle byte) pair, and 255 x 255 of them is more than it will take. */
#define DT_NEEDLE 16
/* and searched for in the first DT_SCAN positions (the verifier's branch limit) */
#define DT_SCAN (DT_STRSIZE - 1 < 128 ? DT_STRSIZE - 1 : 128)

/* First position of needle in s at or after `start` (-1 when absent), as D's index().
 * Lengths and the bound are re-read from cells at every test, so a comparison narrows a
 * throw-away register and the loop's paths stay equal for the verifier. */
static __always_inline s32 dt_index_at(const char *s, const char *needle, s64 start)
{
	volatile s64 *cell = dt_cells();
	if (!cell)
		return -1;
	cell[8] = dt_strlen(s);
	cell[9] = dt_strlen(needle);
	cell[10] = start < 0 ? 0 : start;
	cell[11] = -1;
	if (cell[9] == 0)
		return cell[10] > cell[8] ? -1 : (s32)cell[10];
#pragma clang loop unroll(disable)
	for (u32 i = 0; i < DT_SCAN; i++) {
		if ((s64)i + cell[9] > cell[8])
			break;
		if ((s64)i < cell[10])
			continue;
		u32 j = 0;
#pragma clang loop unroll(disable)
		for (; j < DT_NEEDLE; j++) {
			if ((s64)j >= cell[9])
				break;
			if (s[(i + j) & DT_SMASK] != needle[j & DT_SMASK])
				break;
		}
		if ((s64)j >= cell[9] || j == DT_NEEDLE) {
			cell[11] = i;
			break;
		}
	}
	return (s32)cell[11];
}

static __always_inline s32 dt_index(const char *s, const char *needle, s64 start)
{
	return (s32)dt_launder(dt_index_at(s, needle, start));
}

/* Last position of needle in s at or before `start` (-1 when absent), as D's rindex(). */
static __always_inline s32 dt_rindex(const char *s, const char *needle, s64 start)
{
	volatile s64 *cell = dt_cells();
	if (!cell)
		return -1;
	cell[8] = dt_strlen(s);
	cell[9] = dt_strlen(needle);
	if (cell[9] > cell[8])
		return -1;
	cell[10] = (start < 0 || start > cell[8] - cell[9]) ? cell[8] - cell[9] : start;
	cell[11] = -1;
#pragma clang loop unroll(disable)
	for (u32 i = 0; i < DT_SCAN; i++) {
		if ((s64)i > cell[10])
			break;
		u32 j = 0;
#pragma clang loop unroll(disable)
		for (; j < DT_NEEDLE; j++) {
			if ((s64)j >= cell[9])
				break;
			if (s[(i + j) & DT_SMASK] != needle[j & DT_SMASK])
				break;
		}
		if ((s64)j >= cell[9] || j == DT_NEEDLE)
			cell[11] = i;
	}
	return (s32)dt_launder(cell[11]);
}

/* The rest of s from position `at` (at < 0: the empty string). */
static __always_inline void dt_strfrom(char *dst, const char *s, s32 at)
{
	if (at < 0) {
		dst[0] = 0;
		return;
	}
	bpf_probe_read_kernel_str(dst, DT_STRSIZE, s + ((u32)at & DT_SMASK));
}

static __always_inline s32 dt_strchr(const char *s, char c, int last)
{
	volatile s64 *cell = dt_cells();
	if (!cell)
		return -1;
	cell[2] = -1;
	#pragma clang loop unroll(disable)
	for (u32 i = 0; i < DT_STRSIZE - 1; i++) {
		char x = s[i];
		if (x == c) {
			cell[2] = i;
			if (!last)
				break;
		}
		if (x == 0)
			break;
	}
	return (s32)cell[2];
}

/* basename() and dirname() as POSIX (and DTrace) define them: trailing slashes are
 * ignored, "" gives ".", "/" gives "/". Forward passes only, so the verifier can bound them. */
static __always_inline void dt_copy_range(char *dst, const char *s, s32 from, s32 to)
{
	u32 i = 0;
	#pragma clang loop unroll(disable)
	for (; i < DT_STRSIZE - 1; i++) {
		char c = s[(from + i) & DT_SMASK];
		if ((s32)i > to - from || c == 0)
			break;
		dst[i] = c;
	}
	dst[i & DT_SMASK] = 0;
}

/* The last non-slash position (cell 3) and the last slash before it (cell 4); -1: none. */
static __always_inline void dt_path_scan(const char *s, volatile s64 *cell)
{
	u32 len = dt_strlen(s);
	cell[3] = -1;
	cell[4] = -1;
	cell[5] = -1;
	#pragma clang loop unroll(disable)
	for (u32 i = 0; i < DT_STRSIZE - 1; i++) {
		if (i >= len)
			break;
		if (s[i] != '/')
			cell[3] = i;
	}
	s64 end = cell[3];
	#pragma clang loop unroll(disable)
	for (u32 i = 0; i < DT_STRSIZE - 1; i++) {
		if ((s64)i >= end)
			break;
		if (s[i] == '/')
			cell[4] = i;
	}
	s64 slash = cell[4];
	/* the last non-slash before that slash (for dirname) in cell 5 */
	#pragma clang loop unroll(disable)
	for (u32 i = 0; i < DT_STRSIZE - 1; i++) {
		if ((s64)i >= slash)
			break;
		if (s[i] != '/')
			cell[5] = i;
	}
}

static __always_inline void dt_basename(char *dst, const char *s)
{
	volatile s64 *cell = dt_cells();
	if (!cell) {
		dst[0] = 0;
		return;
	}
	dt_path_scan(s, cell);
	s64 end = cell[3], slash = cell[4];
	if (end < 0) {
		dst[0] = s[0] ? '/' : '.';
		dst[1] = 0;
		return;
	}
	dt_copy_range(dst, s, (s32)(slash + 1) & DT_SMASK, (s32)end & DT_SMASK);
}

static __always_inline void dt_dirname(char *dst, const char *s)
{
	volatile s64 *cell = dt_cells();
	if (!cell) {
		dst[0] = 0;
		return;
	}
	dt_path_scan(s, cell);
	s64 end = cell[3], slash = cell[4], keep = cell[5];
	if (end < 0) {
		dst[0] = s[0] ? '/' : '.';
		dst[1] = 0;
	} else if (slash < 0) {
		dst[0] = '.';
		dst[1] = 0;
	} else if (keep < 0) {
		dst[0] = '/';
		dst[1] = 0;
	} else {
		dt_copy_range(dst, s, 0, (s32)keep & DT_SMASK);
	}
}

static __always_inline void dt_lltostr(char *dst, s64 v, u64 base)
{
	char tmp[24];
	u64 u = v < 0 && base == 10 ? -(u64)v : (u64)v;
	int n = 0;
	#pragma clang loop unroll(disable)
	for (int i = 0; i < 23; i++) {
		u64 d = u % base;
		tmp[i] = d < 10 ? '0' + d : 'a' + d - 10;
		u /= base;
		n = i + 1;
		if (u == 0)
			break;
	}
	int o = 0;
	if (v < 0 && base == 10)
		dst[o++] = '-';
	#pragma clang loop unroll(disable)
	for (int i = 23; i >= 0; i--) {
		if (i < n)
			dst[o++ & 31] = tmp[i];
	}
	dst[o & 31] = 0;
}

static __always_inline s64 dt_strtoll(const char *s, s64 base)
{
	s64 v = 0;
	int neg = 0;
	u32 i = 0;
	#pragma clang loop unroll(disable)
	while (i < 8 && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (s[i & DT_SMASK] == '-') {
		neg = 1;
		i++;
	} else if (s[i & DT_SMASK] == '+') {
		i++;
	}
	if (base == 16 && s[i & DT_SMASK] == '0' && (s[(i + 1) & DT_SMASK] | 0x20) == 'x')
		i += 2;
	#pragma clang loop unroll(disable)
	for (u32 k = 0; k < 64; k++) {
		char c = s[(i + k) & DT_SMASK];
		s64 d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
			d = (c | 0x20) - 'a' + 10;
		else
			break;
		if (d >= base)
			break;
		v = v * base + d;
	}
	return neg ? -v : v;
}

static __always_inline void dt_strcase(char *dst, const char *s, int upper)
{
	u32 i = 0;
	#pragma clang loop unroll(disable)
	for (; i < DT_STRSIZE - 1; i++) {
		char c = s[i];
		if (c == 0)
			break;
		if (upper && c >= 'a' && c <= 'z')
			c -= 32;
		else if (!upper && c >= 'A' && c <= 'Z')
			c += 32;
		dst[i] = c;
	}
	dst[i & DT_SMASK] = 0;
}

/* D's cleanpath(): the path with empty and "." components dropped and each ".." removing
 * the component before it, lexically (".." at the root stays at the root; leading ".."s
 * of a relative path stay); "." when a relative path cleans to nothing. One step per
 * iteration, at most two per character: state 0 is at a component, 1 copies one (and
 * ends it at a '/'), 2 backs the output up over the component a ".." removes.
 * The positions live in the unused upper half of dst, volatile: read back from map
 * memory they are unknown to the verifier, so the paths of one iteration merge instead
 * of multiplying. */
static __always_inline void dt_cleanpath(char *dst, const char *s)
{
	volatile u32 *v = (volatile u32 *)(dst + DT_STRBUF);	/* r, w, floor, state */
	u32 n = dt_strlen(s);
	u32 rooted = s[0] == '/';
	v[0] = rooted;
	v[1] = rooted;
	v[2] = rooted;
	v[3] = 0;
	if (rooted)
		dst[0] = '/';
	#pragma clang loop unroll(disable)
	for (u32 k = 0; k < 2 * DT_STRSIZE; k++) {
		u32 r = v[0] & DT_SMASK, w = v[1] & DT_SMASK, floor = v[2], state = v[3];
		if (state == 2) {
			if (w > floor && dst[w] != '/')
				v[1] = w - 1;
			else
				v[3] = 0;
			continue;
		}
		if (r >= n)
			break;
		char c = s[r];
		if (state == 1) {
			if (c == '/')
				v[3] = 0;
			else {
				dst[w] = c;
				v[1] = w + 1;
			}
			v[0] = r + 1;
			continue;
		}
		char c1 = s[(r + 1) & DT_SMASK];
		char c2 = s[(r + 2) & DT_SMASK];
		if (c == '/' || (c == '.' && (c1 == 0 || c1 == '/'))) {
			v[0] = r + 1;
			continue;
		}
		if (c == '.' && c1 == '.' && (c2 == 0 || c2 == '/')) {
			v[0] = r + 2;
			if (w > floor) {
				v[1] = w - 1;
				v[3] = 2;
			} else if (!rooted) {
				if (w > 0)
					dst[w++ & DT_SMASK] = '/';
				dst[w++ & DT_SMASK] = '.';
				dst[w++ & DT_SMASK] = '.';
				v[1] = w;
				v[2] = w;
			}
			continue;
		}
		if (w != rooted)
			dst[w++ & DT_SMASK] = '/';
		dst[w & DT_SMASK] = c;
		v[1] = w + 1;
		v[0] = r + 1;
		v[3] = 1;
	}
	u32 w = v[1] & DT_SMASK;
	if (w == 0 && n > 0)
		dst[w++] = '.';
	dst[w & DT_SMASK] = 0;
}

/* D's strtok(s, delim): the next token of s, as C's strtok; s NULL (has_s 0) goes on
 * with the string of the last call. `st` keeps that string (DT_STRBUF bytes) and the
 * position after the last token (a u32 after it). No token left gives "" (DTrace: NULL).
 * The delimiters become a 256-bit set first, so each character is tested in one step. */
static __always_inline void dt_strtok(char *dst, char *st, const char *s, int has_s,
				      const char *delim)
{
	volatile u32 *pos = (volatile u32 *)(st + DT_STRBUF);
	u64 set[4] = {};
	u32 i = 0;
	if (has_s) {
		dt_strcpy(st, s);
		*pos = 0;
	}
	#pragma clang loop unroll(disable)
	for (; i < DT_STRSIZE - 1; i++) {
		u8 c = delim[i];
		if (c == 0)
			break;
		set[(c >> 6) & 3] |= 1ULL << (c & 63);
	}
	i = *pos & DT_SMASK;
	#pragma clang loop unroll(disable)
	for (u32 k = 0; k < DT_STRSIZE - 1; k++) {
		u8 c = st[i & DT_SMASK];
		if (c == 0 || !((set[(c >> 6) & 3] >> (c & 63)) & 1))
			break;
		i++;
	}
	/* through memory: the skip loop's exits then enter the token loop as one state */
	*pos = i;
	u32 start = *pos & DT_SMASK, o = 0;
	#pragma clang loop unroll(disable)
	for (u32 k = 0; k < DT_STRSIZE - 1; k++) {
		u8 c = st[(start + k) & DT_SMASK];
		if (c == 0)
			break;
		i = start + k + 1;
		if ((set[(c >> 6) & 3] >> (c & 63)) & 1)
			break;
		dst[k] = c;
		o = k + 1;
	}
	*pos = i;
	dst[o & DT_SMASK] = 0;
}
