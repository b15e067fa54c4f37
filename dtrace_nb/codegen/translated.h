/*
 * DTrace's translated structures computed from kernel structures (codegen/translated.py):
 * the strings of fileinfo_t and psinfo_t, the thread state of lwpsinfo_t, uregs[] and
 * caller. Offsets are the running kernel's, from BTF (DT_OFF_* flags of the runtime).
 */

#define DT_PATH_DEPTH 16

/* `x` masked to an offset inside a string buffer, with the mask kept: the compiler must
 * not drop it on a range it proved, which the verifier does not know. */
static __always_inline u32 dt_opaque(u32 x)
{
	asm volatile("" : "+r"(x));
	return x;
}

static __always_inline u32 dt_buf_offset(u32 x)
{
	return dt_opaque(x) & (DT_STRBUF - 1);
}

/* The file at descriptor `fd` of the current process (0 when there is none). */
static __always_inline u64 dt_fd_file(s64 fd)
{
	u64 files = dt_kread_u64((void *)(bpf_get_current_task() + DT_OFF_TASK_FILES));
	u64 fdt = dt_kread_u64((void *)(files + DT_OFF_FILES_FDT));
	u32 max = (u32)dt_kread_u64((void *)(fdt + DT_OFF_FDTABLE_MAX_FDS));
	if (fd < 0 || fd >= max)
		return 0;
	u64 table = dt_kread_u64((void *)(fdt + DT_OFF_FDTABLE_FD));
	return dt_kread_u64((void *)(table + 8 * fd));
}

static __always_inline void dt_put_none(char *dst)
{
	/* "<none>": what DTrace's translator gives for a descriptor that is not open */
	*(u64 *)dst = 0x003e656e6f6e3cULL;
}

/*
 * The path of `dentry` under mount `mnt` (a struct vfsmount *), as d_path() gives it,
 * walking up through the mounts to the root: at most DT_PATH_DEPTH components.
 */
static __always_inline void dt_d_path(char *dst, u64 mnt, u64 dentry)
{
	u64 names[DT_PATH_DEPTH];
	u32 n = 0;
	u64 mount = mnt - DT_OFF_MOUNT_MNT;	/* real_mount(): the vfsmount is in a mount */

#pragma unroll
	for (int i = 0; i < 2 * DT_PATH_DEPTH; i++) {
		u64 root = dt_kread_u64((void *)(mnt + DT_OFF_VFSMOUNT_MNT_ROOT));
		u64 parent = dt_kread_u64((void *)(dentry + DT_OFF_DENTRY_D_PARENT));
		if (dentry == root) {
			u64 up = dt_kread_u64((void *)(mount + DT_OFF_MOUNT_MNT_PARENT));
			if (up == mount || up == 0)
				break;	/* the root of the mount tree */
			dentry = dt_kread_u64((void *)(mount + DT_OFF_MOUNT_MNT_MOUNTPOINT));
			mount = up;
			mnt = mount + DT_OFF_MOUNT_MNT;
			continue;
		}
		if (dentry == parent || dentry == 0 || n >= DT_PATH_DEPTH)
			break;
		names[n & (DT_PATH_DEPTH - 1)] = dt_kread_u64((void *)(dentry + DT_OFF_DENTRY_D_NAME_NAME));
		/* a count the verifier sees as any of 0..31: the paths through the loop then
		 * reach each iteration in one state, so it verifies them once */
		n = dt_opaque(n + 1) & (2 * DT_PATH_DEPTH - 1);
		dentry = parent;
	}
	u32 pos = 0;
	dst[0] = '/';
	for (int i = DT_PATH_DEPTH - 1; i >= 0; i--) {
		if (i < n && pos < DT_STRSIZE - 1) {
			dst[dt_buf_offset(pos)] = '/';
			pos++;
			long r = bpf_probe_read_kernel_str(dst + dt_buf_offset(pos), DT_STRBUF,
							   (void *)names[i & (DT_PATH_DEPTH - 1)]);
			if (r > 1)
				pos += r - 1;
		}
		pos = dt_buf_offset(pos);	/* one state at every iteration, as above */
	}
	if (pos == 0)
		pos = 1;	/* the root itself: "/" */
	if (pos > DT_STRSIZE - 1)
		pos = DT_STRSIZE - 1;
	dst[dt_buf_offset(pos)] = 0;
}

/*
 * The name d_path() gives a pipe or a socket, whose filesystems are not mounted:
 * "pipe:[INODE]", "socket:[INODE]" (their d_dname). 0 for other filesystems.
 */
static __always_inline int dt_pseudo_path(char *dst, u64 mnt, u64 dentry)
{
	u64 sb = dt_kread_u64((void *)(mnt + DT_OFF_VFSMOUNT_MNT_SB));
	u64 type = dt_kread_u64((void *)(sb + DT_OFF_SUPER_BLOCK_S_TYPE));
	u64 name = dt_kread_u64((void *)(type + DT_OFF_FILE_SYSTEM_TYPE_NAME));
	u64 fs = 0;
	u32 pos;
	bpf_probe_read_kernel(&fs, 7, (void *)name);
	if (fs == 0x736665706970ULL) {		/* "pipefs" */
		*(u64 *)dst = 0x5b3a65706970ULL;	/* "pipe:[" */
		pos = 6;
	} else if (fs == 0x73666b636f73ULL) {	/* "sockfs" */
		*(u64 *)dst = 0x5b3a74656b636f73ULL;	/* "socket:[" */
		pos = 8;
	} else {
		return 0;
	}
	u64 inode = dt_kread_u64((void *)(dentry + DT_OFF_DENTRY_D_INODE));
	u64 ino = dt_kread_u64((void *)(inode + DT_OFF_INODE_I_INO));
	char digits[20];
	int n = 0;
	for (int i = 0; i < 20; i++) {
		digits[i] = '0' + ino % 10;
		ino /= 10;
		n++;
		if (ino == 0)
			break;
	}
	for (int i = 19; i >= 0; i--) {
		if (i < n) {
			dst[pos & 31] = digits[i];
			pos++;
		}
	}
	dst[pos & 31] = ']';
	dst[(pos + 1) & 31] = 0;
	return 1;
}

/* fi_pathname (which 0), fi_mount (1), fi_name (2), fi_fs (3) of the file at `file`. */
static __always_inline void dt_file_string(char *dst, u64 file, int which)
{
	if (file == 0) {
		dt_put_none(dst);
		return;
	}
	u64 mnt = dt_kread_u64((void *)(file + DT_OFF_FILE_F_PATH_MNT));
	u64 dentry = dt_kread_u64((void *)(file + DT_OFF_FILE_F_PATH_DENTRY));
	u64 name;
	if (which == 0) {
		if (!dt_pseudo_path(dst, mnt, dentry))
			dt_d_path(dst, mnt, dentry);
		return;
	}
	if (which == 1) {
		/* "<unknown>", as dtrace-utils' io.d gives for every open file */
		*(u64 *)dst = 0x6e776f6e6b6e753cULL;
		*(u16 *)(dst + 8) = 0x003e;
		return;
	}
	if (which == 2) {
		name = dt_kread_u64((void *)(dentry + DT_OFF_DENTRY_D_NAME_NAME));
	} else {
		u64 sb = dt_kread_u64((void *)(mnt + DT_OFF_VFSMOUNT_MNT_SB));
		u64 type = dt_kread_u64((void *)(sb + DT_OFF_SUPER_BLOCK_S_TYPE));
		name = dt_kread_u64((void *)(type + DT_OFF_FILE_SYSTEM_TYPE_NAME));
	}
	if (bpf_probe_read_kernel_str(dst, DT_STRSIZE, (void *)name) < 0)
		dst[0] = 0;
}

/* The current process's arguments as psinfo_t.pr_psargs has them: separated by spaces,
 * at most 79 bytes (read from the process's memory, mm->arg_start .. arg_end). */
static __always_inline void dt_psargs(char *dst)
{
	u64 mm = dt_kread_u64((void *)(bpf_get_current_task() + DT_OFF_TASK_MM));
	u64 start = dt_kread_u64((void *)(mm + DT_OFF_MM_ARG_START));
	u64 end = dt_kread_u64((void *)(mm + DT_OFF_MM_ARG_END));
	u64 len = end - start;
	dst[0] = 0;
	if (mm == 0 || end <= start)
		return;
	if (len > 79)
		len = 79;
	if (bpf_probe_read_user(dst, 80, (void *)start) < 0) {
		if (bpf_probe_read_user(dst, len & 127, (void *)start) < 0) {
			dst[0] = 0;
			return;
		}
	}
	dst[len & 127] = 0;
	/* arguments are NUL-separated; a NUL before the last byte separates two of them */
	for (int i = 0; i < 79; i++) {
		if (i + 1 < len && dst[i] == 0)
			dst[i] = ' ';
	}
}

/* lwpsinfo_t pr_state (sname 0) or pr_sname (sname 1) of a task_struct.__state, as
 * DTrace's procfs.d maps Linux's task states. */
static __always_inline s8 dt_lwp_state(u32 st, int sname)
{
	if (st & 0x3)			/* TASK_INTERRUPTIBLE, TASK_UNINTERRUPTIBLE */
		return sname ? 'S' : 1;	/* SSLEEP */
	if (st & 0xc)			/* __TASK_STOPPED, __TASK_TRACED */
		return sname ? 'T' : 4;	/* SSTOP */
	if (st & 0xb0)			/* EXIT_ZOMBIE, EXIT_DEAD, TASK_DEAD */
		return sname ? 'Z' : 3;	/* SZOMB */
	if (st & 0x300)			/* TASK_WAKEKILL, TASK_WAKING */
		return sname ? 'W' : 7;	/* SWAIT */
	return sname ? 'R' : 2;		/* SRUN */
}

/* uregs[]: word `i` of the current thread's saved user registers (struct pt_regs). */
static __always_inline u64 dt_uregs(u32 i)
{
	u64 regs = (u64)bpf_task_pt_regs(bpf_get_current_task_btf());
	return dt_kread_u64((void *)(regs + 8 * (i & 31)));
}

/* caller (user 0) and ucaller (user BPF_F_USER_STACK): the second frame of the stack. */
static __always_inline u64 dt_caller(void *ctx, u64 flags)
{
	u64 frames[2] = {0, 0};
	if (bpf_get_stack(ctx, frames, sizeof(frames), flags) < 0)
		return 0;
	return frames[1];
}

/* curcpu: the address of the current CPU's slot of a per-CPU map, as a plain integer
 * (read back through a helper, so the verifier lets scripts do arithmetic on it). */
static __always_inline u64 dt_cpu_address(const void *p)
{
	u64 a = (u64)p, v = 0;
	bpf_probe_read_kernel(&v, sizeof(v), &a);
	return v;
}

/* cpuinfo_t.cpu_chip: the physical package of the current CPU (DT_CPU_CHIP(cpu), an
 * expression the runtime writes from sysfs at load time). */
static __always_inline s32 dt_cpu_chip(void)
{
#ifdef DT_CPU_CHIP
	u32 cpu = bpf_get_smp_processor_id();
	return DT_CPU_CHIP(cpu);
#else
	return 0;
#endif
}
