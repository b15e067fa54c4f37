"""bpf(2): every command dtrace-nb makes, each a function over the kernel's attribute
struct (union bpf_attr's member for that command), returning what the kernel returned.

Errors are -errno results where callers decide what a refusal means (a program load that
is retried with the verifier's log, a lookup that finds nothing), OSError otherwise.
"""

from __future__ import annotations

import ctypes
from typing import Optional

from dtrace_nb.runtime.kernel.libc import SYS_BPF, error, syscall

# commands (enum bpf_cmd)
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_PROG_LOAD = 5
BPF_PROG_TEST_RUN = 10
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_LINK_CREATE = 28
BPF_MAP_LOOKUP_BATCH = 24
BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0

# map types (enum bpf_map_type)
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_STACK_TRACE = 7
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_RINGBUF = 27

# program types (enum bpf_prog_type)
BPF_PROG_TYPE_KPROBE = 2
BPF_PROG_TYPE_TRACEPOINT = 5
BPF_PROG_TYPE_PERF_EVENT = 7
BPF_PROG_TYPE_RAW_TRACEPOINT = 17
BPF_PROG_TYPE_TRACING = 26

# expected attach types of tracing programs (enum bpf_attach_type)
BPF_TRACE_FENTRY = 24
BPF_TRACE_FEXIT = 25
BPF_TRACE_UPROBE_MULTI = 48  # a kprobe-type program on many uprobes, one link (Linux 6.6)
BPF_F_UPROBE_MULTI_RETURN = 1

OBJ_NAME_LEN = 16

# `r0 = 0; exit`: the smallest program the verifier accepts (feature probes)
RETURN_ZERO = bytes((0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0))


U32, U64, NAME = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_char * OBJ_NAME_LEN


def _layout(*runs: tuple[type, str]) -> list[tuple[str, type]]:
    """ctypes fields from runs of (type, "member member ..."), in the kernel's order
    (union bpf_attr in include/uapi/linux/bpf.h); pointers are u64 addresses."""
    return [(name, ctype) for ctype, names in runs for name in names.split()]


class _MapCreateAttr(ctypes.Structure):
    _fields_ = _layout(
        (U32, "map_type key_size value_size max_entries map_flags inner_map_fd numa_node"),
        (NAME, "map_name"),
        (U32, "map_ifindex btf_fd btf_key_type_id btf_value_type_id btf_vmlinux_value_type_id"),
        (U64, "map_extra"))


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = _layout(
        (U32, "prog_type insn_cnt"), (U64, "insns license"), (U32, "log_level log_size"),
        (U64, "log_buf"), (U32, "kern_version prog_flags"), (NAME, "prog_name"),
        (U32, "prog_ifindex expected_attach_type prog_btf_fd func_info_rec_size"),
        (U64, "func_info"), (U32, "func_info_cnt line_info_rec_size"), (U64, "line_info"),
        (U32, "line_info_cnt attach_btf_id attach_prog_fd"))


class _ElemAttr(ctypes.Structure):
    _fields_ = _layout((U32, "map_fd _pad"), (U64, "key value flags"))


class _BatchAttr(ctypes.Structure):
    _fields_ = _layout((U64, "in_batch out_batch keys values"), (U32, "count map_fd"),
                       (U64, "elem_flags flags"))


class _TestRunAttr(ctypes.Structure):
    _fields_ = _layout(
        (U32, "prog_fd retval data_size_in data_size_out"), (U64, "data_in data_out"),
        (U32, "repeat duration ctx_size_in ctx_size_out"), (U64, "ctx_in ctx_out"),
        (U32, "flags cpu batch_size _pad"))


class _RawTracepointAttr(ctypes.Structure):
    _fields_ = _layout((U64, "name"), (U32, "prog_fd _pad"), (U64, "cookie"))


class _InfoAttr(ctypes.Structure):
    _fields_ = _layout((U32, "bpf_fd info_len"), (U64, "info"))


class _EnableStatsAttr(ctypes.Structure):
    _fields_ = _layout((U32, "type"))


class _ProgInfo(ctypes.Structure):
    """struct bpf_prog_info up to the run statistics (older members kept for the offsets)."""
    _fields_ = _layout(
        (U32, "type id"), (ctypes.c_uint8 * 8, "tag"), (U32, "jited_prog_len xlated_prog_len"),
        (U64, "jited_prog_insns xlated_prog_insns load_time"),
        (U32, "created_by_uid nr_map_ids"), (U64, "map_ids"), (NAME, "name"),
        (U32, "ifindex gpl_compatible"), (U64, "netns_dev netns_ino"),
        (U32, "nr_jited_ksyms nr_jited_func_lens"), (U64, "jited_ksyms jited_func_lens"),
        (U32, "btf_id func_info_rec_size"), (U64, "func_info"),
        (U32, "nr_func_info nr_line_info"), (U64, "line_info jited_line_info"),
        (U32, "nr_jited_line_info line_info_rec_size jited_line_info_rec_size nr_prog_tags"),
        (U64, "prog_tags run_time_ns run_cnt recursion_misses"))


class _UprobeMultiLinkAttr(ctypes.Structure):
    _fields_ = _layout((U32, "prog_fd target_fd attach_type flags"),
                       (U64, "path offsets ref_ctr_offsets cookies"),
                       (U32, "cnt multi_flags pid _pad"))


def bpf(cmd: int, attr: ctypes.Structure) -> int:
    """bpf(cmd, &attr, sizeof attr): the result, or -errno."""
    return syscall(SYS_BPF, ctypes.c_int(cmd), ctypes.byref(attr),
                   ctypes.c_uint(ctypes.sizeof(attr)))


def object_name(name: str) -> bytes:
    """A map's or program's name as the kernel keeps it: 15 characters of [A-Za-z0-9_.]."""
    return "".join(c if c.isalnum() or c in "_." else "_"
                   for c in name)[:OBJ_NAME_LEN - 1].encode()


# -- maps ----------------------------------------------------------------------------------

def map_create(map_type: int, name: str, key_size: int, value_size: int, max_entries: int,
               flags: int = 0) -> int:
    """A new map's fd; OSError if the kernel refuses."""
    attr = _MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size,
                          max_entries=max_entries, map_flags=flags, map_name=object_name(name))
    fd = bpf(BPF_MAP_CREATE, attr)
    if fd < 0:
        raise error(fd, f"could not create map {name}")
    return fd


def _elem(cmd: int, fd: int, key: int, value: int = 0, flags: int = 0) -> int:
    return bpf(cmd, _ElemAttr(map_fd=fd, key=key, value=value, flags=flags))


def map_lookup(fd: int, key_addr: int, value_addr: int) -> bool:
    """Copy the value of the key at key_addr to value_addr; False if there is none."""
    return _elem(BPF_MAP_LOOKUP_ELEM, fd, key_addr, value_addr) == 0


def map_update(fd: int, key_addr: int, value_addr: int, flags: int = 0) -> None:
    err = _elem(BPF_MAP_UPDATE_ELEM, fd, key_addr, value_addr, flags)
    if err < 0:
        raise error(err, "map update failed")


def map_delete(fd: int, key_addr: int) -> bool:
    """Remove a key; False if it was not there."""
    return _elem(BPF_MAP_DELETE_ELEM, fd, key_addr) == 0


def map_lookup_batch(fd: int, in_batch: int, out_batch: int, keys_addr: int,
                     values_addr: int, count: int) -> tuple[int, int]:
    """One BPF_MAP_LOOKUP_BATCH: up to `count` keys and values copied out, continuing from
    the token at in_batch (0: from the start) and leaving the next token at out_batch.
    (0 or -errno, how many were copied); -ENOENT says the map has no more."""
    attr = _BatchAttr(in_batch=in_batch, out_batch=out_batch, keys=keys_addr,
                      values=values_addr, count=count, map_fd=fd)
    res = bpf(BPF_MAP_LOOKUP_BATCH, attr)
    return (res if res < 0 else 0), attr.count


# -- programs ------------------------------------------------------------------------------

def prog_load(prog_type: int, name: str, insns: bytes, license: bytes = b"GPL",
              kern_version: int = 0, expected_attach_type: int = 0, attach_btf_id: int = 0,
              log_size: int = 0) -> tuple[int, str]:
    """(fd or -errno, verifier log). With log_size 0 the kernel writes no log (the fast
    path); callers ask again with a log when the first load fails."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license)
    log = ctypes.create_string_buffer(log_size) if log_size else None
    attr = _ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8,
                         insns=ctypes.addressof(code), license=ctypes.addressof(lic),
                         kern_version=kern_version, prog_name=object_name(name),
                         expected_attach_type=expected_attach_type,
                         attach_btf_id=attach_btf_id)
    if log is not None:
        attr.log_level, attr.log_size, attr.log_buf = 1, log_size, ctypes.addressof(log)
    fd = bpf(BPF_PROG_LOAD, attr)
    text = log.value.decode(errors="replace") if log is not None else ""
    return fd, text


def prog_test_run(prog_fd: int, ctx: bytes) -> None:
    """Run a program once, now, in this thread, on the context bytes given
    (BPF_PROG_TEST_RUN); OSError if the kernel cannot."""
    buf = ctypes.create_string_buffer(ctx, len(ctx))
    attr = _TestRunAttr(prog_fd=prog_fd, ctx_size_in=len(ctx), ctx_in=ctypes.addressof(buf))
    err = bpf(BPF_PROG_TEST_RUN, attr)
    if err < 0:
        raise error(err, "BPF_PROG_TEST_RUN")


def raw_tracepoint_open(prog_fd: int, name: Optional[str]) -> int:
    """Attach a raw tracepoint program to tracepoint `name`, or a tracing program (fentry,
    fexit) to the target it was loaded for (name None): the link's fd; OSError if refused."""
    text = ctypes.create_string_buffer(name.encode()) if name is not None else None
    attr = _RawTracepointAttr(name=ctypes.addressof(text) if text is not None else 0,
                              prog_fd=prog_fd)
    fd = bpf(BPF_RAW_TRACEPOINT_OPEN, attr)
    if fd < 0:
        raise error(fd, "BPF_RAW_TRACEPOINT_OPEN")
    return fd


def enable_run_time_stats() -> int:
    """BPF_ENABLE_STATS(BPF_STATS_RUN_TIME): while the returned fd is open the kernel counts
    every program's runs and the time they take (two clock reads per run); OSError if
    refused."""
    fd = bpf(BPF_ENABLE_STATS, _EnableStatsAttr(type=BPF_STATS_RUN_TIME))
    if fd < 0:
        raise error(fd, "BPF_ENABLE_STATS")
    return fd


def prog_run_stats(prog_fd: int) -> tuple[int, int, int]:
    """(kernel program id, runs, ns spent running) of a loaded program, counted while run
    time statistics are enabled (BPF_OBJ_GET_INFO_BY_FD)."""
    info = _ProgInfo()
    attr = _InfoAttr(bpf_fd=prog_fd, info_len=ctypes.sizeof(info),
                     info=ctypes.addressof(info))
    err = bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    if err < 0:
        raise error(err, "BPF_OBJ_GET_INFO_BY_FD")
    return info.id, info.run_cnt, info.run_time_ns


def uprobe_multi_link(prog_fd: int, path: str, offsets: list[int], cookies: list[int],
                      pid: int, ret: bool) -> int:
    """Attach a program loaded for BPF_TRACE_UPROBE_MULTI to uprobes (uretprobes with
    `ret`) at file offsets of `path`, each with its cookie (bpf_get_attach_cookie), in
    process `pid` (-1: every process): the link's fd; OSError if refused."""
    name = ctypes.create_string_buffer(path.encode())
    offs = (ctypes.c_uint64 * len(offsets))(*offsets)
    cks = (ctypes.c_uint64 * len(cookies))(*cookies)
    attr = _UprobeMultiLinkAttr(prog_fd=prog_fd, attach_type=BPF_TRACE_UPROBE_MULTI,
                                path=ctypes.addressof(name), offsets=ctypes.addressof(offs),
                                cookies=ctypes.addressof(cks), cnt=len(offsets),
                                multi_flags=BPF_F_UPROBE_MULTI_RETURN if ret else 0,
                                pid=max(pid, 0))
    fd = bpf(BPF_LINK_CREATE, attr)
    if fd < 0:
        raise error(fd, "BPF_LINK_CREATE (uprobe_multi)")
    return fd
