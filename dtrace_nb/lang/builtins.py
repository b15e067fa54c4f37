"""What the D language predefines: built-in variables, subroutines, actions and aggregating
functions, with their types and argument rules. The checker consults these tables; the code
generator decides how each is computed. Nothing here knows about providers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from dtrace_nb.lang.kernel_types import task_pointer
from dtrace_nb.lang.types import (INT, INT64, UINT64, IntType, PtrType, StringType)

PID_T = IntType(4, True, "pid_t")
ID_T = IntType(4, True, "id_t")
UID_T = IntType(4, False, "uid_t")
GID_T = IntType(4, False, "gid_t")
CPU_T = IntType(4, True, "processorid_t")
SIZE_T = IntType(8, False, "size_t")
UINT16 = IntType(2, False, "uint16_t")
UINT32 = IntType(4, False, "uint32_t")
UINTPTR = PtrType(8, False, "uintptr_t", None)
EXECNAME = StringType(16)  # TASK_COMM_LEN

INT_BUILTINS: dict[str, IntType] = {
    "pid": PID_T, "tid": ID_T, "ppid": PID_T, "uid": UID_T, "gid": GID_T,
    "timestamp": UINT64, "vtimestamp": UINT64, "walltimestamp": INT64,
    "cpu": CPU_T, "errno": INT, "id": IntType(4, False, "dtrace_id_t"),
    "epid": IntType(4, False, "dtrace_epid_t"),
    "curthread": task_pointer(),  # struct task_struct *: lang/kernel_types.py
    "stackdepth": UINT32, "ustackdepth": UINT32,
    **{f"arg{i}": INT64 for i in range(10)},
}
PROBE_STRINGS = ("probeprov", "probemod", "probefunc", "probename")
STRING_BUILTINS = ("execname", *PROBE_STRINGS)

# Not provided, with the reason a user gets.
UNAVAILABLE_BUILTINS = {
    "ipl": "ipl (interrupt priority level) does not exist on Linux",
}

# Aggregating functions: name -> (number of value args, number of constant params).
AGG_FUNCS: dict[str, tuple[int, int]] = {
    "count": (0, 0), "sum": (1, 0), "min": (1, 0), "max": (1, 0), "avg": (1, 0),
    "stddev": (1, 0), "quantize": (1, 0), "lquantize": (1, 3), "llquantize": (1, 4),
}
# Trailing constant parameters that may be left out, and their values (lquantize's step).
AGG_PARAM_DEFAULTS: dict[str, tuple[int, ...]] = {"lquantize": (1,)}
# Histograms take an optional last argument: the increment added to the value's bucket.
AGG_INCREMENT = ("quantize", "lquantize", "llquantize")


@dataclass(frozen=True)
class Sub:
    """A subroutine: argument kinds ('int', 'string', 'string or NULL', 'any') with
    `optional` trailing ones, and the result type ('string' results use the program's
    strsize unless sized). A 'string' may be given as NULL, a bad address when the clause
    runs; 'string or NULL' gives NULL a meaning (strtok's continuation)."""

    args: tuple[str, ...]
    optional: int = 0
    result: str = "int"
    int_type: Optional[IntType] = None
    size: Optional[int] = None  # the longest string result, NUL included (cut to strsize)
    constant_args: tuple[int, ...] = ()  # arguments that must be integer constants
    protos: tuple[str, ...] = ()  # C types of dt_open.c's prototype, where not int/char *

    def proto(self, i: int) -> str:
        """Argument i's type as dtrace(1) names it in a prototype mismatch."""
        if i < len(self.protos):
            return self.protos[i]
        return "char *" if self.args[i].startswith("string") else "int"


SUBROUTINES: dict[str, Sub] = {
    "strlen": Sub(("string",), result="int", int_type=SIZE_T),
    "strjoin": Sub(("string", "string"), result="string"),
    "substr": Sub(("string", "int", "int"), optional=1, result="string"),
    "index": Sub(("string", "string", "int"), optional=1, result="int", int_type=INT),
    "rindex": Sub(("string", "string", "int"), optional=1, result="int", int_type=INT),
    "strchr": Sub(("string", "int"), result="string"),
    "strrchr": Sub(("string", "int"), result="string"),
    "strstr": Sub(("string", "string"), result="string"),
    "strtoll": Sub(("string", "int"), optional=1, result="int", int_type=INT64),
    "basename": Sub(("string",), result="string"),
    "dirname": Sub(("string",), result="string"),
    "lltostr": Sub(("int", "int"), optional=1, result="string"),
    "toupper": Sub(("string",), result="string"),
    "tolower": Sub(("string",), result="string"),
    "copyinstr": Sub(("int", "int"), optional=1, result="string"),
    "copyin": Sub(("int", "int"), result="ptr"),
    "stringof": Sub(("any",), result="string"),
    "rand": Sub((), result="int", int_type=INT),
    "ntohs": Sub(("int",), result="int", int_type=UINT16),
    "htons": Sub(("int",), result="int", int_type=UINT16),
    "ntohl": Sub(("int",), result="int", int_type=UINT32),
    "htonl": Sub(("int",), result="int", int_type=UINT32),
    "ntohll": Sub(("int",), result="int", int_type=UINT64),
    "htonll": Sub(("int",), result="int", int_type=UINT64),
    "inet_ntoa": Sub(("int",), result="string", size=16),
    "inet_ntoa6": Sub(("int", "int"), optional=1, result="string", size=48,
                      constant_args=(1,)),
    "inet_ntop": Sub(("int", "int"), result="string", size=48),
    "link_ntop": Sub(("int", "int"), result="string", size=64),
    "cleanpath": Sub(("string",), result="string"),
    # strtok(NULL, delim) goes on with the string of the last call
    "strtok": Sub(("string or NULL", "string"), result="string"),
    # Linux's struct mutex and rwlock_t (qrwlock), read at the lock's address
    "mutex_owned": Sub(("int",), result="int", int_type=INT,
                       protos=("struct mutex *",)),
    "mutex_owner": Sub(("int",), result="int", int_type=PtrType(8, False, "kthread_t *", None),
                       protos=("struct mutex *",)),
    "mutex_type_adaptive": Sub(("int",), result="int", int_type=INT,
                               protos=("struct mutex *",)),
    "mutex_type_spin": Sub(("int",), result="int", int_type=INT,
                           protos=("struct mutex *",)),
    "rw_read_held": Sub(("int",), result="int", int_type=INT, protos=("rwlock_t *",)),
    "rw_write_held": Sub(("int",), result="int", int_type=INT, protos=("rwlock_t *",)),
    "rw_iswriter": Sub(("int",), result="int", int_type=INT, protos=("rwlock_t *",)),
    "getmajor": Sub(("int",), result="int", int_type=UINT32),
    "getminor": Sub(("int",), result="int", int_type=UINT32),
    "speculation": Sub((), result="int", int_type=INT),
    "progenyof": Sub(("int",), result="int", int_type=INT, protos=("pid_t",)),
}

# Subroutines and actions DTrace has that dtrace-nb does not, with the reason a user gets.
_USER_SYMBOL = ("{}() is not available yet: it needs the address recorded with its process "
                "to symbolise; print it with printf(\"%A\", addr) or take ustack()")
UNAVAILABLE_SUBROUTINES = {
    "d_path": "d_path() needs the kernel's bpf_d_path(), which only fentry/LSM programs may "
              "call: tracepoint, perf and uprobe programs cannot",
    "jstack": "jstack() needs the JVM's DTrace helper (ustack helpers), which Linux's JVMs "
              "do not provide; use ustack()",
    "pcap": "pcap() is not supported: dtrace-nb writes no capture files; trace the packet "
            "with tracemem()",
    "ddi_pathname": "ddi_pathname() reads Solaris's device tree, which Linux does not have",
    "getf": "getf() is not available: use fds[] when it is, or the file's path from a "
            "tracepoint argument",
    **{n: _USER_SYMBOL.format(n) for n in ("uaddr", "usym", "ufunc", "umod")},
    "alloca": "alloca() is not available yet: D pointers into scratch memory (stores "
              "through them, indexing) are not implemented",
    "bcopy": "bcopy() is not available yet: it copies into alloca() memory, which is not "
             "implemented",
    "copyinto": "copyinto() is not available yet: it copies into alloca() memory, which is "
                "not implemented",
}

# Their argument counts in dt_open.c's prototypes: a call with the wrong number is refused
# for that first, as dtrace(1) does.
UNAVAILABLE_ARITY = {"alloca": (1, 1), "bcopy": (3, 3), "copyinto": (3, 3), "d_path": (1, 1),
                     "jstack": (0, 2), "uaddr": (1, 1), "usym": (1, 1), "ufunc": (1, 1),
                     "umod": (1, 1)}

# Actions: statements that record data or change the session. name -> (min, max) args.
ACTIONS: dict[str, tuple[int, int]] = {
    "printf": (1, 64), "trace": (1, 1), "tracemem": (2, 3), "printa": (1, 64),
    "stack": (0, 1), "ustack": (0, 2), "exit": (1, 1), "clear": (1, 1), "trunc": (1, 2),
    "normalize": (2, 2), "denormalize": (1, 1), "setopt": (1, 2),
    "speculate": (1, 1), "commit": (1, 1), "discard": (1, 1),
    "system": (1, 64), "raise": (1, 1), "stop": (0, 0), "copyout": (3, 3),
    "copyoutstr": (3, 3), "panic": (0, 0), "breakpoint": (0, 0), "chill": (1, 1),
    "ftruncate": (0, 0), "freopen": (1, 64),
}
DESTRUCTIVE = ("system", "raise", "stop", "copyout", "copyoutstr", "panic", "breakpoint",
               "chill")
# Actions that produce a record the consumer handles (the rest act in the kernel only).
RECORDING_ACTIONS = ("printf", "trace", "tracemem", "printa", "stack", "ustack", "exit",
                     "clear", "trunc", "normalize", "denormalize", "setopt", "commit",
                     "discard", "system", "ftruncate", "freopen")
