"""Run one hand-written bcc baseline (bench/bcc/NAME.c) around a command, the way a bcc
user would: compile, attach, start the command, wait for it, print, clean up.

    /usr/bin/python3 bench/bcc_run.py NAME -- CMD ARGS...

Run by the system python (bcc comes from python3-bpfcc). Prints the command's output,
then one JSON line on stderr: {"ready_ns": ..., "records": ..., "drops": ...}.
count_*: the counts table at the end; records: every record decoded in a Python callback.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time

from bcc import BPF

HERE = os.path.dirname(os.path.abspath(__file__))


class Rec(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint32), ("cpu", ctypes.c_uint32), ("arg0", ctypes.c_uint64)]


def main() -> int:
    name = sys.argv[1]
    cmd = sys.argv[sys.argv.index("--") + 1:]
    with open(os.path.join(HERE, "bcc", name + ".c")) as f:
        text = f.read()
    if name != "records":
        b = BPF(text=text)  # RAW_TRACEPOINT_PROBE attaches itself
        ready = time.monotonic_ns()
        subprocess.run(cmd, check=True)
        out = {"ready_ns": ready}
        if "counts" in b:
            out["keys"] = len(b["counts"].items())
        b.cleanup()
        print(json.dumps(out), file=sys.stderr)
        return 0

    # records: the target must exist before compiling (its pid is in the program), so
    # start it held on a pipe, as `dtrace -c` does.
    rfd, wfd = os.pipe()
    proc = subprocess.Popen(["sh", "-c", 'read _ <&3; exec "$@"', "sh", *cmd],
                            pass_fds=(rfd,), preexec_fn=lambda: os.dup2(rfd, 3))
    os.close(rfd)
    b = BPF(text=text, cflags=[f"-DTARGET={proc.pid}"])
    got = [0]
    last = [0]

    def on_event(_ctx, data, _size):
        ev = ctypes.cast(data, ctypes.POINTER(Rec)).contents
        last[0] = ev.arg0
        got[0] += 1

    b["events"].open_ring_buffer(on_event)
    t0 = time.monotonic()
    os.write(wfd, b"go\n")
    os.close(wfd)
    while proc.poll() is None:
        b.ring_buffer_poll(100)
    b.ring_buffer_consume()
    elapsed = time.monotonic() - t0
    drops = sum(int(v) for v in b["drops"].getvalue(b["drops"].Key(0)))
    b.cleanup()
    print(json.dumps({"records": got[0], "drops": drops, "seconds": elapsed}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
