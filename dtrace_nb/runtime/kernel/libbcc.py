"""The libbcc functions dtrace-nb calls itself, with their ctypes signatures declared here
once. Only the compiler's child process calls them (runtime/compiler.py): to read what
bcc's compile produced (each map's declaration, each function's instructions). Loading,
maps and attaching go through bpf(2) and perf_event_open directly (kernel/bpf.py,
kernel/perf.py), not through libbcc.

bcc's Python package declares some of these and not others (the table enumeration); all
of those called are declared here, so a reader need not know which.
"""

from __future__ import annotations

import ctypes as c

# name: (restype, argtypes); `module` is the void * of a compiled bcc module
_SIGNATURES = {
    "bpf_num_tables": (c.c_size_t, [c.c_void_p]),
    "bpf_table_name": (c.c_char_p, [c.c_void_p, c.c_size_t]),
    "bpf_table_fd_id": (c.c_int, [c.c_void_p, c.c_size_t]),
    "bpf_table_type_id": (c.c_int, [c.c_void_p, c.c_size_t]),
    "bpf_table_max_entries_id": (c.c_ulonglong, [c.c_void_p, c.c_size_t]),
    "bpf_table_flags_id": (c.c_int, [c.c_void_p, c.c_size_t]),
    "bpf_table_key_size_id": (c.c_size_t, [c.c_void_p, c.c_size_t]),
    "bpf_table_leaf_size_id": (c.c_size_t, [c.c_void_p, c.c_size_t]),
    "bpf_table_key_desc_id": (c.c_char_p, [c.c_void_p, c.c_size_t]),
    "bpf_table_leaf_desc_id": (c.c_char_p, [c.c_void_p, c.c_size_t]),
    "bpf_function_start": (c.c_void_p, [c.c_void_p, c.c_char_p]),
    "bpf_function_size": (c.c_size_t, [c.c_void_p, c.c_char_p]),
    "bpf_module_license": (c.c_char_p, [c.c_void_p]),
    "bpf_module_kern_version": (c.c_uint, [c.c_void_p]),
}


def declared(bcc):
    """bcc's libbcc handle with every function above declared (idempotent)."""
    lib = bcc.libbcc.lib
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib
