"""The kernel interface: the only code that makes bpf(2) and perf_event_open(2) calls,
writes tracefs probe events or declares ctypes signatures, and the one place that finds out
what the running kernel offers.

    libc.py      syscall(2), ioctl(2) and the system call numbers, declared once
    bpf.py       every bpf(2) command dtrace-nb makes
    perf.py      perf_event_open and the ioctls that attach a program to an event
    tracefs.py   tracepoint ids and kprobe/uprobe events made in tracefs
    libbcc.py    the libbcc functions called directly, with their signatures
    cpus.py      possible and online CPUs
    features.py  what the kernel offers (kprobes, uprobes, fentry, ring buffer, BTF...)
"""
