#!/usr/bin/env python3
"""Write the tutorial notebooks 02-06 from the cell texts below (01 is edited by hand).

    .venv/bin/python scripts/make-notebooks.py

Notebooks are data; keeping their cells here makes them reviewable as text and keeps the
outputs out of git (the test suite and scripts/record-notebooks.py execute them).
"""

from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell

LATENCY = [
    md("""# Latency: how long do system calls take?

DTrace's classic latency pattern: on `:entry`, remember the time in a **thread-local**
variable (`self->ts`, one per thread); on `:return`, subtract and aggregate; then clear the
variable (assigning 0 frees it). `quantize()` shows the distribution in power-of-two
buckets, `sum()` the total. Recorded sessions replay where BPF cannot load."""),
    code("%load_ext dtrace_nb"),
    md("A workload with writes, reads, a few `fsync`s and short sleeps:"),
    code('''%%writefile /tmp/dtrace-nb-latency.py
import os, time
fd = os.open("/tmp/dtrace-nb-latency.bin", os.O_RDWR | os.O_CREAT, 0o644)
for i in range(150):
    os.pwrite(fd, os.urandom(4096), i * 4096)
    if i % 50 == 0:
        os.fsync(fd)
    time.sleep(0.02 if i % 10 == 0 else 0.002)
    os.pread(fd, 4096, 0)
os.close(fd)'''),
    md("""## Per system call

`timestamp` is nanoseconds; `self->ts` is only set for our process's threads (the entry
predicate), so the return clause's predicate `/self->ts/` needs no `pid` test."""),
    code('''%%dtrace -q -c "python3 /tmp/dtrace-nb-latency.py" -o lat
syscall:::entry /pid == $target/ { self->ts = timestamp; }
syscall:::return /self->ts/
{
    @ns[probefunc] = quantize(timestamp - self->ts);
    @total[probefunc] = sum(timestamp - self->ts);
    self->ts = 0;
}'''),
    md("The same numbers as DataFrames: where did the time go?"),
    code('''total = lat["total"].sort_values("sum", ascending=False)
total["ms"] = total["sum"] / 1e6
total.head(8)'''),
    md("Each system call's distribution, drawn from the `quantize()` buckets:"),
    code('''from dtrace_nb.display.plots import as_image
as_image(lat.figure())'''),
    md("""## Per process

`progenyof($target)` is true for the target and everything it starts: here a shell runs
our program and `ls` side by side. Keys can have several parts."""),
    code('''%%dtrace -q -c "sh -c 'python3 /tmp/dtrace-nb-latency.py & ls -R /usr/share/doc > /dev/null; wait'" -o perproc
syscall:::entry /progenyof($target)/ { self->ts = timestamp; }
syscall:::return /self->ts/
{
    @us[execname, probefunc] = sum((timestamp - self->ts) / 1000);
    self->ts = 0;
}'''),
    code('''table = perproc["us"].pivot_table(index="probefunc", columns="execname", values="sum",
                                  fill_value=0)
table.loc[table.sum(axis=1).sort_values(ascending=False).index].head(10)'''),
]

PROFILING = [
    md("""# Profiling: where does the CPU time go?

`profile-997` fires 997 times a second on every busy CPU. Aggregating on `ustack()` (the
user stack) or `stack()` (the kernel stack) counts samples per call path; the stacks are
symbolised in user space. A flame graph (drawn here as an icicle: callers on top) shows
which call paths use the time."""),
    code("%load_ext dtrace_nb"),
    md("A small C program with an uneven call tree, built with frame pointers so stacks can be walked:"),
    code('''%%writefile /tmp/dtrace-nb-burn.c
#include <time.h>
static volatile unsigned long sink;
void leaf(unsigned long n) { for (unsigned long i = 0; i < n; i++) sink += i * i; }
void parse(void) { leaf(200000); }
void layout(void) { leaf(300000); }
void paint(void) { leaf(500000); }
void render(void) { layout(); paint(); }
void frame(void) { parse(); render(); }
int main(void) { time_t end = time(NULL) + 4; while (time(NULL) < end) frame(); return 0; }'''),
    code('''import shutil, subprocess
if shutil.which("gcc"):
    subprocess.run(["gcc", "-O0", "-g", "-fno-omit-frame-pointer", "-o", "/tmp/dtrace-nb-burn",
                    "/tmp/dtrace-nb-burn.c"], check=True)'''),
    md("""`-T 2` stops after two seconds, while the program still runs, so its symbols can be
read from the live process."""),
    code('''%%dtrace -q -T 2 -c /tmp/dtrace-nb-burn -o prof
profile-997 /pid == $target/ { @stacks[ustack()] = count(); }'''),
    code('''from dtrace_nb.display.plots import as_image
as_image(prof.flamegraph("stacks", title="user stacks of dtrace-nb-burn"))'''),
    md("The same samples by the function on top of the stack (where the CPU actually was), and by caller of `leaf`:"),
    code('''from dtrace_nb.display.flame import stack_frames
df = prof["stacks"].copy()
frames = df["ustack()"].map(stack_frames)
df["on cpu"] = frames.map(lambda f: f[-1] if f else "?")
df["caller"] = frames.map(lambda f: f[-2] if len(f) > 1 else "?")
df.groupby("caller")["count"].sum().sort_values(ascending=False)'''),
    md("""## Kernel stacks

`stack()` walks the kernel stack; `arg0` is the kernel program counter (0 when the sample
hit user code). `dd` copying from /dev/zero to /dev/null spends its time in the kernel."""),
    code('''%%dtrace -q -T 2 -c "dd if=/dev/zero of=/dev/null bs=4k count=100000000" -o kprof
profile-997 /pid == $target && arg0/ { @k[stack()] = count(); }'''),
    code('''as_image(kprof.flamegraph("k", title="kernel stacks of dd"))'''),
]

PROBES = [
    md("""# How probes work: the abstract probe and the mechanism underneath

A D program names **abstract probes** (`provider:module:function:name`) and reads
`arg0..arg9` or typed `args[N]`. A **provider** decides how the kernel delivers each probe:
which hook, in what context, how each argument is fetched. The explain view shows both
sides; it compiles the program but loads nothing, so it needs no privileges."""),
    code("%load_ext dtrace_nb"),
    md("""## One question, three probes

"Count `openat` calls" can be asked through the `syscall` provider, through the per-syscall
tracepoint `syscalls:sys_enter_openat` (the `sdt` provider), or through the generic
`raw_syscalls:sys_enter` tracepoint, filtering on the syscall number (257 on x86-64)."""),
    code('''%%dtrace --explain
syscall::openat:entry { @["syscall provider"] = count(); }
sdt:syscalls::sys_enter_openat { @["tracepoint syscalls:sys_enter_openat"] = count(); trace(copyinstr(args[2])); }
sdt:raw_syscalls::sys_enter /arg0 == 257/ { @["tracepoint raw_syscalls:sys_enter"] = count(); }'''),
    md("""The first is served by one raw tracepoint for every syscall probe of a program
(cheap to attach and detach, selects by number); the second by a perf-event tracepoint
whose record carries the arguments as named fields (`args[2]` is `filename`); the third
by the generic tracepoint, whose `arg0` is the syscall number. All three see the same calls:"""),
    code('''%%writefile /tmp/dtrace-nb-opens.py
import glob
for path in sorted(glob.glob("/etc/*.conf"))[:20]:
    open(path).close()'''),
    code('''%%dtrace -q -c "python3 /tmp/dtrace-nb-opens.py" -o same
syscall::openat:entry /pid == $target/ { @["syscall provider"] = count(); }
sdt:syscalls::sys_enter_openat /pid == $target/ { @["syscalls tracepoint"] = count(); }
sdt:raw_syscalls::sys_enter /pid == $target && arg0 == 257/ { @["raw_syscalls tracepoint"] = count(); }'''),
    code('''counts = same.df.set_index(same.df.columns[0])["count"]
print(counts.to_string())
assert counts.nunique() == 1, "all three mechanisms see the same calls"'''),
    md("""## A stable provider and the tracepoint under it

`proc:::exec-success` is DTrace's stable name for "a process has exec'd". On Linux it is
served by the `sched:sched_process_exec` tracepoint; the script does not need to know."""),
    code('''%%dtrace --explain
proc:::exec-success { printf("%d %s\\n", pid, execname); }
proc:::create { printf("%d -> %d\\n", pid, args[0]->pr_pid); }'''),
    code('''%%dtrace -q -c "sh -c '/bin/true; /bin/ls / > /dev/null; /bin/true'" -o both
proc:::exec-success /progenyof($target)/ { @["proc:::exec-success", execname] = count(); }
sdt:sched::sched_process_exec /progenyof($target)/ { @["sdt:sched::sched_process_exec", execname] = count(); }'''),
    code('''both.df.pivot_table(index=both.df.columns[1], columns=both.df.columns[0], values="count")'''),
    md("The stable providers and their translated argument types, as a DataFrame:"),
    code('''%dtrace -l -v -n proc:::'''),
]

INVESTIGATION = [
    md("""# An investigation: why is this program slow?

A Python program processes 40 small files: it reads each one, writes a summary line to a
log, `fsync`s the log after every line, and sleeps a little between files to be polite.
It takes longer than the work suggests. We ask the kernel where the time goes, then
answer with pandas."""),
    code("%load_ext dtrace_nb"),
    code('''%%writefile /tmp/dtrace-nb-job.py
import hashlib, os, time
os.makedirs("/tmp/dtrace-nb-job", exist_ok=True)
for i in range(40):
    with open(f"/tmp/dtrace-nb-job/in{i}.txt", "wb") as f:
        f.write(os.urandom(20000))
log = open("/tmp/dtrace-nb-job/log.txt", "w")
start = time.time()
for i in range(40):
    with open(f"/tmp/dtrace-nb-job/in{i}.txt", "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    log.write(f"{i} {digest}\\n")
    log.flush()
    os.fsync(log.fileno())
    time.sleep(0.01)
print(f"processed 40 files in {time.time() - start:.2f} s")'''),
    md("## 1. What does it ask the kernel for?"),
    code('''%%dtrace -q -c "python3 /tmp/dtrace-nb-job.py" -o calls
syscall:::entry /pid == $target/ { @calls[probefunc] = count(); }'''),
    code('''calls["calls"].sort_values("count", ascending=False).head(10)'''),
    md("""## 2. How long does each kind of call take?

Time between entry and return per system call, in microseconds; and, from the scheduler,
how long the program waits **off CPU** (asleep or blocked). `sched:::off-cpu` fires as a
thread leaves the CPU, `sched:::on-cpu` as one comes back; `tid` in `on-cpu` is the thread
coming back, so an array keyed by `tid` pairs them."""),
    code('''%%dtrace -q -c "python3 /tmp/dtrace-nb-job.py" -o times
syscall:::entry /pid == $target/ { self->ts = timestamp; }
syscall:::return /self->ts/ { @us[probefunc] = sum((timestamp - self->ts) / 1000); self->ts = 0; }
sched:::off-cpu /pid == $target/ { off[tid] = timestamp; }
sched:::on-cpu /off[tid]/ { @offcpu["off CPU"] = sum((timestamp - off[tid]) / 1000); off[tid] = 0; }
io:::start { @disk_bytes = sum(args[0]->b_bcount); @disk_requests = count(); }'''),
    md("## 3. The answer, in pandas"),
    code('''import pandas as pd
us = times["us"].set_index("probefunc")["sum"].sort_values(ascending=False)
breakdown = pd.DataFrame({"ms": us / 1000})
breakdown["share of syscall time"] = (breakdown["ms"] / breakdown["ms"].sum()).round(3)
breakdown.head(6)'''),
    code('''offcpu_ms = times["offcpu"]["sum"].iloc[0] / 1000
disk_kib = times["disk_bytes"]["sum"].iloc[0] / 1024 if len(times["disk_bytes"]) else 0
requests = times["disk_requests"]["count"].iloc[0] if len(times["disk_requests"]) else 0
print(f"off CPU: {offcpu_ms:.0f} ms; written to disk: {disk_kib:.0f} KiB in {requests} requests")'''),
    code('''from matplotlib.figure import Figure
from dtrace_nb.display.plots import as_image
top = breakdown.head(6)
fig = Figure(figsize=(6, 2.8), layout="constrained")
ax = fig.subplots()
ax.barh(top.index[::-1], top["ms"][::-1])
ax.set_xlabel("milliseconds in the system call")
ax.set_title("where the job waits")
as_image(fig)'''),
    md("""**Conclusion.** Hashing 800 KB takes a few milliseconds. Most of the time spent in
system calls is `clock_nanosleep`: the polite sleep, 40 times, off CPU. `read` is mostly
Python starting up (its modules). And the disk: a few KB of log became a couple of hundred
write requests, because every `fsync` forces the file and the filesystem journal out.
Dropping the sleep and calling `fsync` once at the end is where to start; then trace again
and compare the two DataFrames."""),
]


FLEET = [
    md("""# Many hosts at once: one trace, merged

Performance questions outgrow one machine: *which of my hosts makes the small reads?*
`%%dtrace --cluster ADDR` runs one D program on every worker of a
[Dask distributed](https://distributed.dask.org) cluster, shows the merged aggregations
live, and returns them merged exactly, as if one host had seen every event, with each
host's own rows a method away.

Here the "hosts" are two Dask workers on this machine, `web1` and `web2`. On real hosts
you would start `dask scheduler` on one and `dask worker tcp://scheduler:8786 --name web1`
on each (as root, or with CAP_BPF and CAP_PERFMON, dtrace-nb installed)."""),
    code("%load_ext dtrace_nb"),
    md("""The service: it reads a 4 MiB file thirty times, a tenth of a second apart. Both hosts
run the same code, but its read size comes from the environment, and someone configured
`web2` differently."""),
    code("""%%writefile /tmp/dtrace-nb-fleet-job.py
import os, time
chunk = int(os.environ.get("JOB_CHUNK", "65536"))
for _ in range(30):
    with open("/tmp/dtrace-nb-fleet-data", "rb", buffering=0) as f:
        while f.read(chunk):
            pass
    time.sleep(0.1)"""),
    code("""import logging, os
from distributed import Nanny, Scheduler, SpecCluster

with open("/tmp/dtrace-nb-fleet-data", "wb") as f:
    f.write(os.urandom(4 << 20))

hosts = {"web1": 65536, "web2": 4096}  # JOB_CHUNK on each host
cluster = SpecCluster(
    scheduler={"cls": Scheduler, "options": {"host": "127.0.0.1", "port": 8786,
                                             "dashboard_address": None}},
    workers={name: {"cls": Nanny, "options": {"name": name, "nthreads": 1, "host": "127.0.0.1",
                                              "env": {"JOB_CHUNK": str(chunk)},
                                              "silence_logs": logging.ERROR}}
             for name, chunk in hosts.items()},
    silence_logs="error")
cluster.scheduler_address"""),
    md("""## 1. Trace both hosts

`-c CMD` starts the job on **every** chosen host, and `$target` in each host's program is
that host's own process. The area shows the merged totals while the hosts trace, and the
control bar how many hosts are live; Stop (or `-T`, or an `exit()` on any host) stops them
all."""),
    code("""%%dtrace --cluster tcp://127.0.0.1:8786 -q -c "python3 /tmp/dtrace-nb-fleet-job.py" -o reads
syscall::read:entry /pid == $target/ { @reads = count(); @bytes = sum(arg2); @size = quantize(arg2); }"""),
    md("""## 2. The fleet total, and each host

`reads["reads"]` is the fleet total; `reads.by_host("reads")` has a `host` column first.
The total alone says "a lot of reads"; per host it says where."""),
    code('reads.by_host("reads")'),
    code("""per_host = reads.by_host("bytes").merge(reads.by_host("reads"), on="host")
per_host["bytes per read"] = per_host["sum"] // per_host["count"]
per_host"""),
    md("""**Conclusion.** Both hosts read the same 120 MiB, but `web2` asks for it in 4 KiB reads:
more than ten times the system calls of `web1` for the same work (the rest of the reads
are Python starting up). The quantize histogram above
has both hosts' buckets added; `reads.by_host("size")` shows whose buckets are whose. How
each host ended is in `reads.hosts`, and a host that fails (cannot load the program, dies)
is reported by name while the others' results are kept."""),
    code("reads.hosts"),
    code("cluster.close()"),
]


def write(name: str, cells: list) -> None:
    nb = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (dtrace-nb)",
                       "language": "python"},
        "language_info": {"name": "python"}})
    path = ROOT / "notebooks" / name
    nbformat.write(nb, path)
    print(path)


if __name__ == "__main__":
    write("02-latency.ipynb", LATENCY)
    write("03-profiling.ipynb", PROFILING)
    write("04-how-probes-work.ipynb", PROBES)
    write("05-investigation.ipynb", INVESTIGATION)
    write("06-fleet.ipynb", FLEET)
