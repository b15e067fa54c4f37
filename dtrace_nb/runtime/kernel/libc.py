"""The C library functions the kernel layer calls through ctypes, declared once: syscall(2)
(for bpf(2) and perf_event_open(2), which glibc does not wrap) and ioctl(2), with the
system call numbers of the machines dtrace-nb knows.
"""

from __future__ import annotations

import ctypes
import os
import platform

# (bpf, perf_event_open) by machine; both are absent from glibc's wrappers
_SYSCALLS = {"x86_64": (321, 298), "aarch64": (280, 241), "riscv64": (280, 241),
             "ppc64le": (361, 319), "s390x": (351, 331), "i686": (357, 336),
             "armv7l": (386, 364)}
MACHINE = platform.machine()
SYS_BPF, SYS_PERF_EVENT_OPEN = _SYSCALLS.get(MACHINE, (-1, -1))

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_ioctl = _libc.ioctl
_ioctl.restype = ctypes.c_int
_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong]


def syscall(number: int, *args) -> int:
    """syscall(number, args...): the result, or -errno (ENOSYS where the number is not
    known on this machine). Arguments are ctypes values or ints that fit a C int."""
    if number < 0:
        return -38  # ENOSYS
    ret = _syscall(ctypes.c_long(number), *args)
    return ret if ret >= 0 else -(ctypes.get_errno() or 1)


def ioctl(fd: int, request: int, arg: int = 0) -> int:
    """ioctl(fd, request, arg): 0 (or the result), or -errno."""
    ret = _ioctl(fd, request, arg)
    return ret if ret >= 0 else -(ctypes.get_errno() or 1)


def close(fd: int) -> None:
    """Close an fd of ours, ignoring one already closed."""
    try:
        os.close(fd)
    except OSError:
        pass


def error(neg_errno: int, what: str) -> OSError:
    """An OSError for a -errno result, worded as `what: strerror`."""
    err = -neg_errno
    return OSError(err, f"{what}: {os.strerror(err)}")
