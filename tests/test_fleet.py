"""Fleet tracing through Dask (dtrace_nb/fleet): a scheduler and two `dask worker`
processes on 127.0.0.1, started here. Every worker runs the same program with -c, and its
target does a number of pwrite64() calls that only that worker knows (its environment
says how many), so each host's ground truth differs; the merged aggregations must be the
exact sums, and a worker killed mid-trace must be reported while the other's are kept.

Each worker is a host of its own in two more ways: its own object cache (XDG_CACHE_HOME),
and its own `fleetbin` first on its PATH, built from one source with a function only
alpha's has (fleet_extra), so that `-c fleetbin` is a different binary on each host and a
pid provider description matches different probes on each."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from dtrace_nb.aggregate.buckets import llquantize_bucket, quantize_bucket
from dtrace_nb.errors import DUsageError
from dtrace_nb.fleet.client import FleetRun
from dtrace_nb.fleet.report import FleetResult, run_fleet
from dtrace_nb.session import SessionConfig
from tests.leakcheck import bpf_state, settled_diff

pytestmark = pytest.mark.kernel

DASK = Path(sys.executable).with_name("dask")
DTRACE_NB = Path(sys.executable).with_name("dtrace-nb")
PWRITES = {"alpha": 5, "beta": 12}  # worker name -> pwrite64() calls of its target
EXTRA = {"alpha": True, "beta": False}  # whose fleetbin has fleet_extra()

# calls fleet_work(k) for k = 1..N (argv[1]), and fleet_extra(k) too where built -DEXTRA
FLEETBIN = r"""
#include <stdlib.h>
__attribute__((noinline)) void fleet_work(int k) { __asm__ volatile("" : : "r"(k) : "memory"); }
#ifdef EXTRA
__attribute__((noinline)) void fleet_extra(int k) { __asm__ volatile("" : : "r"(k) : "memory"); }
#endif
int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1;
    for (int k = 1; k <= n; k++) {
        fleet_work(k);
#ifdef EXTRA
        fleet_extra(k);
#endif
    }
    return 0;
}
"""

# The target: N pwrite64() of 1..N bytes (N from the worker's environment), then a file
# that says it is done, then it stays alive for a while (the kill test needs it running).
WORKLOAD = (
    "import os, sys, time\n"
    "n = int(os.environ['FLEET_TEST_PWRITES'])\n"
    "fd = os.open(os.devnull, os.O_WRONLY)\n"
    "for k in range(1, n + 1): os.pwrite(fd, b'x' * k, 0)\n"
    "open(os.environ['FLEET_TEST_DONE'], 'w').write(str(os.getpid()))\n"
    "time.sleep(float(sys.argv[1]))\n"
)

PROGRAM = """
syscall::pwrite64:entry /pid == $target/
{
    @calls[probefunc] = count();
    @bytes = sum(arg2);
    @most = max(arg2);
    @sizes = quantize(arg2);
    @mean = avg(arg2);
}
"""

# the other aggregating functions, merged from the same calls
MORE = """
syscall::pwrite64:entry /pid == $target/
{
    @least = min(arg2);
    @spread = stddev(arg2);
    @lin = lquantize(arg2, 0, 10, 2);
    @log = llquantize(arg2, 2, 0, 4, 4);
    printf("%d\\n", arg2);
}
"""


class Cluster:
    """`dask scheduler` and one `dask worker` per name, all on 127.0.0.1."""

    def __init__(self, names, tmp: Path):
        self.tmp = tmp
        sched_file = tmp / "scheduler.json"
        self.procs: dict[str, subprocess.Popen] = {}
        self.scheduler = subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(sched_file)],
            stdout=subprocess.DEVNULL, stderr=open(tmp / "scheduler.log", "w"))
        deadline = time.monotonic() + 60
        while not sched_file.exists() or not sched_file.read_text().strip():
            assert time.monotonic() < deadline, (tmp / "scheduler.log").read_text()
            time.sleep(0.1)
        self.address = json.loads(sched_file.read_text())["address"]
        for name in names:
            env = dict(os.environ, FLEET_TEST_PWRITES=str(PWRITES[name]),
                       FLEET_TEST_DONE=str(tmp / f"{name}.done"),
                       XDG_CACHE_HOME=str(tmp / f"cache-{name}"),
                       PATH=f"{self._fleetbin(tmp, name)}:{os.environ['PATH']}")
            self.procs[name] = subprocess.Popen(
                [str(DASK), "worker", self.address, "--name", name, "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
                env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / f"{name}.log", "w"))
        self._wait_workers(len(names))

    @staticmethod
    def _fleetbin(tmp: Path, name: str) -> Path:
        """tmp/bin-NAME/fleetbin: this host's build of FLEETBIN."""
        from tests.workloads.build import CC, CFLAGS

        where = tmp / f"bin-{name}"
        where.mkdir(exist_ok=True)
        (tmp / "fleetbin.c").write_text(FLEETBIN)
        subprocess.run([CC, *CFLAGS, *(["-DEXTRA"] if EXTRA[name] else []), "-o",
                        str(where / "fleetbin"), str(tmp / "fleetbin.c")], check=True)
        return where

    def live_events(self) -> set[str]:
        """The fleet's live events that are set on the scheduler (a host is live)."""
        from distributed import Client

        def names(dask_scheduler):
            events = dask_scheduler.extensions["events"]._events
            return [n for n, e in events.items() if "-live-" in n and e.is_set()]

        with Client(self.address, timeout=30, set_as_default=False) as c:
            return set(c.run_on_scheduler(names))

    def when_live(self, n: int, then, timeout: float = 60) -> threading.Thread:
        """A thread that calls then() once n more hosts are live than are now."""
        before = self.live_events()

        def wait():
            deadline = time.monotonic() + timeout
            while len(self.live_events() - before) < n and time.monotonic() < deadline:
                time.sleep(0.1)
            then()

        t = threading.Thread(target=wait, daemon=True)
        t.start()
        return t

    def _wait_workers(self, n: int) -> None:
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as c:
            c.wait_for_workers(n, timeout=60)

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()

    def close(self) -> None:
        for p in [*self.procs.values(), self.scheduler]:
            if p.poll() is None:
                p.terminate()
        for p in [*self.procs.values(), self.scheduler]:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _cluster():
    with tempfile.TemporaryDirectory(prefix="dtnb-fleet-") as tmp:
        c = Cluster(list(PWRITES), Path(tmp))
        try:
            yield c
        finally:
            c.close()


@pytest.fixture(scope="module")
def cluster():
    yield from _cluster()


@pytest.fixture
def own_cluster():
    """A cluster of its own, for a test that kills one of its workers."""
    yield from _cluster()


def run_command(*args: str) -> subprocess.CompletedProcess:
    """The command, run to its end (at most 2 minutes)."""
    return subprocess.run([str(DTRACE_NB), *args], capture_output=True, text=True, timeout=120)


def _config(sleep: float) -> SessionConfig:
    """The program, with -c: the workload, which then sleeps `sleep` seconds."""
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(WORKLOAD)} {sleep}"
    return SessionConfig(PROGRAM, target_command=command, quiet=True)


def _expected_quantize(ns) -> dict[int, int]:
    out: dict[int, int] = {}
    for n in ns:
        for k in range(1, n + 1):
            out[quantize_bucket(k)] = out.get(quantize_bucket(k), 0) + 1
    return out


def test_merged_aggregations_are_the_exact_sums(cluster):
    before = bpf_state()
    outcome = FleetRun(cluster.address, _config(0)).run(duration=60)
    r = FleetResult.from_outcome(outcome, PROGRAM)
    assert r.failed_hosts == [], r.messages
    assert sorted(r.hosts) == ["alpha", "beta"]
    ns = list(PWRITES.values())
    assert r["calls"].to_dict("records") == [{"probefunc": "pwrite64", "count": sum(ns)}]
    assert r["bytes"]["sum"].tolist() == [sum(n * (n + 1) // 2 for n in ns)]
    assert r["most"]["max"].tolist() == [max(ns)]
    mean = r["mean"].iloc[0]
    assert (mean["count"], mean["total"]) == (sum(ns), sum(n * (n + 1) // 2 for n in ns))
    # quantize: bucket by bucket, the two hosts' histograms added
    merged = outcome.merged["sizes"].values[0]
    want = _expected_quantize(ns)
    assert {i: c for i, c in enumerate(merged) if c} == want
    # each host's own rows, a host column first
    per = r.by_host("calls")
    assert dict(zip(per["host"], per["count"])) == PWRITES
    # the text: dtrace(1)'s layout of the fleet totals
    line = next(ln for ln in r.output.splitlines() if "pwrite64" in ln)
    assert line.split() == ["pwrite64", str(sum(ns))]
    assert settled_diff(before) == []


def test_a_worker_killed_mid_trace_is_reported_and_the_other_kept(own_cluster):
    cluster = own_cluster

    before = bpf_state()
    box = {}
    runner = threading.Thread(target=lambda: box.setdefault(
        "outcome", FleetRun(cluster.address, _config(60)).run(duration=8)))
    runner.start()
    done = cluster.tmp / "beta.done"
    deadline = time.monotonic() + 60
    while not done.exists():  # beta's target made its calls: beta is live and traced them
        assert time.monotonic() < deadline and runner.is_alive()
        time.sleep(0.05)
    target = int(done.read_text())
    cluster.kill("beta")
    runner.join(90)
    outcome = box["outcome"]
    r = FleetResult.from_outcome(outcome, PROGRAM)
    assert r.failed_hosts == ["beta"]
    assert any("host beta" in m and "died" in m for m in r.messages), r.messages
    assert r["calls"]["count"].tolist() == [PWRITES["alpha"]]
    assert r.hosts["alpha"]["ok"]
    assert settled_diff(before) == []
    # beta's -c process died with its worker (it would have slept 60 s more)
    assert not os.path.exists(f"/proc/{target}"), open(f"/proc/{target}/status").read()


def test_a_program_that_does_not_compile_is_reported_by_every_host(cluster):
    r = run_fleet(cluster.address, SessionConfig("syscall::nosuchcall:entry {}"), duration=5)
    assert sorted(r.failed_hosts) == ["alpha", "beta"]
    assert sum("nosuchcall" in m for m in r.messages) == 2, r.messages


def test_the_command_prints_the_fleet_totals(cluster):
    command = _config(0).target_command
    done = run_command("--cluster", cluster.address, "-q", "-c", command,
                       "-n", PROGRAM.replace("@sizes = quantize(arg2);", ""))
    assert done.returncode == 0, done.stderr
    rows = {ln.split()[0]: ln.split()[1:] for ln in done.stdout.splitlines() if ln.strip()}
    ns = list(PWRITES.values())
    assert rows["pwrite64"] == [str(sum(ns))]
    assert str(sum(n * (n + 1) // 2 for n in ns)) in rows  # @bytes, keyless: the value alone


def test_the_magic_returns_a_fleet_result(cluster):
    from tests.conftest import ipython_shell

    ip = ipython_shell()
    ip.run_line_magic("load_ext", "dtrace_nb")
    command = _config(0).target_command
    ip.run_cell_magic("dtrace", f"--cluster {cluster.address} -q -c {shlex.quote(command)}",
                      PROGRAM)
    r = ip.user_ns["_dtrace"]  # the cell shows its result; the last one is _dtrace
    assert isinstance(r, FleetResult)
    assert r["calls"]["count"].tolist() == [sum(PWRITES.values())]
    assert sorted(r.by_host("calls")["host"]) == ["alpha", "beta"]


def _fleet_shell():
    from tests.conftest import ipython_shell

    ip = ipython_shell()
    ip.run_line_magic("load_ext", "dtrace_nb")
    return ip, ip.magics_manager.registry["DTraceMagics"]


def test_the_magic_shows_the_fleet_live_in_one_area(cluster, tmp_path, monkeypatch):
    """While the hosts trace, the cell's one area refreshes with the merged totals and the
    hosts live; at the end it is the fleet's result, and the cell returns nothing. Recorded
    (DTRACE_NB_RECORD), the cell replays as a FleetResult where BPF cannot load."""
    from IPython.utils.capture import capture_output

    from dtrace_nb.result.recording import cell_key

    ip, magics = _fleet_shell()
    monkeypatch.setenv("DTRACE_NB_RECORD", str(tmp_path))
    magics.refresh_interval = 0.5
    command = _config(4).target_command  # every call made at once, then 4 s traced
    line = f"--cluster {cluster.address} -q -T 3 -c {shlex.quote(command)}"
    cell = PROGRAM + 'syscall::pwrite64:entry /pid == $target/ { printf("w %d\\n", arg2); }'
    try:
        with capture_output() as cap:
            returned = ip.run_cell_magic("dtrace", line, cell)
    finally:
        magics.refresh_interval = 1.0
    assert returned is None
    view, r = magics.live, ip.user_ns["_dtrace"]
    assert r.stop_reason == "duration" and r.failed_hosts == [], r.messages
    total = sum(PWRITES.values())
    assert r["calls"]["count"].tolist() == [total]
    assert [s for s in view.bar.stages if not s.startswith("starting")] == \
        ["tracing on 2 of 2 hosts", "done (duration)"]
    opened = [o for o in cap.outputs if not o.update]
    assert len(opened) == 1 and view.updates >= 3, view.updates
    # a refresh while tracing showed the merged count, the hosts' sum
    counts = [int(frames["@calls"]["count"].sum()) for _t, status, frames, _f in view.refreshes
              if "tracing on 2 of 2 hosts" in status and "@calls" in frames]
    assert counts and counts[-1] == total, [s for _t, s, _fr, _f in view.refreshes]
    final = cap.outputs[-1].data
    assert final["text/plain"].startswith("dtrace-nb: done (duration) · ")
    html = final["text/html"]
    assert f"{total} lines of output" in html and html.count("[alpha] w ") == PWRITES["alpha"]
    assert html.count("[beta] w ") == PWRITES["beta"] and "<details>" in html
    # each host's status, live and at the end
    assert any("alpha: live · 5 records" in "\n".join(lines) and "beta: live" in
               "\n".join(lines) for lines in view.statuses_seen), view.statuses_seen
    # (each host was stopped by the fleet's -T)
    assert "alpha: ended (stopped) · 5 records · 0 drops · 0 errors" in html
    # played back where BPF cannot load: the same totals and each host's rows
    monkeypatch.delenv("DTRACE_NB_RECORD")
    monkeypatch.setenv("DTRACE_NB_NO_BPF", "1")
    monkeypatch.setenv("DTRACE_NB_REPLAY", str(tmp_path))
    assert (tmp_path / (cell_key(line, cell) + ".json")).exists()
    with capture_output():
        ip.run_cell_magic("dtrace", line, cell)
    again = ip.user_ns["_dtrace"]
    assert type(again) is type(r) and again.replayed_from
    assert again["calls"]["count"].tolist() == [total]
    assert dict(zip(again.by_host("calls")["host"], again.by_host("calls")["count"])) == \
        PWRITES
    assert again.hosts["alpha"]["ok"] and again.failed_hosts == []


def test_by_host_gives_each_hosts_aggregations_too(cluster):
    command = _config(0).target_command
    done = run_command("--cluster", cluster.address, "--by-host", "-q", "-c", command, "-n",
                       "syscall::pwrite64:entry /pid == $target/ { @calls[probefunc] = count(); }")
    assert done.returncode == 0, done.stderr
    lines = [ln.split() for ln in done.stdout.splitlines() if ln.strip()]
    total = sum(PWRITES.values())
    # the fleet total, then each host under its name, as dtrace(1) prints one host's
    assert lines == [["pwrite64", str(total)], ["[alpha]"], ["pwrite64", "5"], ["[beta]"],
                     ["pwrite64", "12"]]
    from IPython.utils.capture import capture_output

    ip, _magics = _fleet_shell()
    with capture_output() as cap:
        ip.run_cell_magic("dtrace", f"--cluster {cluster.address} --by-host -q "
                          f"-c {shlex.quote(command)}", PROGRAM)
    html = cap.outputs[-1].data["text/html"]
    assert "@calls by host" in html and ">alpha<" in html and ">beta<" in html


def test_by_host_needs_a_cluster():
    done = run_command("--by-host", "-n", "BEGIN { exit(0); }")
    assert done.returncode != 0 and "--by-host needs --cluster" in done.stderr


def test_the_stop_button_stops_every_host(cluster):
    import threading

    ip, magics = _fleet_shell()
    magics.live = None

    def click_once_tracing():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            view = magics.live
            if view is not None and view.bar is not None and \
                    view.bar.state.stage.startswith("tracing on"):
                time.sleep(1.0)
                view.bar.button.click()
                return
            time.sleep(0.02)

    clicker = threading.Thread(target=click_once_tracing)
    clicker.start()
    t0 = time.monotonic()
    command = _config(60).target_command
    ip.run_cell_magic("dtrace", f"--cluster {cluster.address} -q -o fr -c {shlex.quote(command)}",
                      PROGRAM)
    clicker.join()
    r = ip.user_ns["fr"]
    assert r.stop_reason == "stopped" and time.monotonic() - t0 < 40
    assert r["calls"]["count"].tolist() == [sum(PWRITES.values())]
    assert magics.live.bar.stages[-1] == "stopped"


def test_bg_traces_the_fleet_while_other_cells_run(cluster):
    ip, magics = _fleet_shell()
    for name in PWRITES:
        (cluster.tmp / f"{name}.done").unlink(missing_ok=True)
    command = _config(60).target_command
    ip.run_cell_magic("dtrace", f"--cluster {cluster.address} --bg -q -o fb "
                      f"-c {shlex.quote(command)}", PROGRAM)
    bg = ip.user_ns["fb"]
    assert bg.running and "running" in repr(bg)
    deadline = time.monotonic() + 60
    while not all((cluster.tmp / f"{n}.done").exists() for n in PWRITES):
        assert time.monotonic() < deadline and bg.running, bg.error
        time.sleep(0.05)
    r = bg.stop()
    assert isinstance(r, FleetResult) and ip.user_ns["fb"] is r and not bg.running
    assert r.stop_reason == "stopped" and r.failed_hosts == [], r.messages
    assert r["calls"]["count"].tolist() == [sum(PWRITES.values())]
    assert magics.live.bar.stages[-1] == "stopped" and "stopped" in repr(bg)


def test_bg_on_an_unreachable_cluster_says_so_in_its_area():
    from IPython.utils.capture import capture_output

    ip, _magics = _fleet_shell()
    with capture_output() as cap:
        ip.run_cell_magic("dtrace", "--cluster tcp://127.0.0.1:9 --bg -o gone", "BEGIN { }")
        bg = ip.user_ns["gone"]
        bg.wait(60)
    assert bg.result is None and "cannot reach the cluster" in str(bg.error)
    html = cap.outputs[-1].data["text/html"]
    assert "failed" in html and "cannot reach the cluster at tcp://127.0.0.1:9" in html


def test_an_unreachable_cluster_is_one_clear_error():
    done = run_command("--cluster", "tcp://127.0.0.1:9", "-n", "BEGIN { exit(0); }")
    assert done.returncode != 0
    assert "cannot reach the cluster at tcp://127.0.0.1:9" in done.stderr
    assert "Traceback" not in done.stderr


def test_exit_on_one_host_stops_the_fleet(cluster):
    # only beta's target writes 12 bytes; alpha's would go on for 60 s
    program = PROGRAM + "syscall::pwrite64:entry /pid == $target && arg2 == 12/ { exit(0); }"
    cfg = SessionConfig(program, target_command=_config(60).target_command, quiet=True)
    t0 = time.monotonic()
    outcome = FleetRun(cluster.address, cfg).run(duration=40)
    assert time.monotonic() - t0 < 25
    r = FleetResult.from_outcome(outcome, program)
    assert r.failed_hosts == [], r.messages
    assert r.stop_reason == "exit"
    assert r.hosts["beta"]["stop_reason"] == "exit"
    assert r["calls"]["count"].tolist() == [sum(PWRITES.values())]


def test_destructive_actions_need_the_workers_permission(cluster):
    # -w on the client is not enough: these workers were not started allowing it
    cfg = SessionConfig('BEGIN { system("true"); exit(0); }', options={"destructive": None})
    r = FleetResult.from_outcome(FleetRun(cluster.address, cfg).run(duration=5), "")
    assert sorted(r.failed_hosts) == ["alpha", "beta"]
    assert sum("destructive actions refused" in m for m in r.messages) == 2, r.messages
    pragma = SessionConfig('#pragma D option destructive\nBEGIN { system("true"); exit(0); }')
    r = FleetResult.from_outcome(FleetRun(cluster.address, pragma).run(duration=5), "")
    assert sorted(r.failed_hosts) == ["alpha", "beta"]


def test_workers_detach_by_themselves_when_their_client_dies(cluster):
    before = bpf_state()
    client = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from dtrace_nb.fleet.report import run_fleet; "
         "from dtrace_nb.session import SessionConfig; "
         "run_fleet(sys.argv[1], SessionConfig('syscall::pwrite64:entry { @n = count(); }'))",
         cluster.address], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(bpf_state().programs - before.programs) < 2:  # one on each worker
            assert time.monotonic() < deadline and client.poll() is None
            time.sleep(0.2)
    finally:
        client.kill()  # no -T and no stop: only the missing heartbeat can stop them
        client.wait()
    t0 = time.monotonic()
    assert settled_diff(before, timeout=40) == []
    from dtrace_nb.fleet.worker import LOST_CLIENT
    assert time.monotonic() - t0 < LOST_CLIENT + 10


def test_every_function_merges_exactly_and_records_come_tagged_in_order(cluster):
    cfg = SessionConfig(MORE, target_command=_config(0).target_command, quiet=True)
    outcome = FleetRun(cluster.address, cfg).run(duration=60)
    r = FleetResult.from_outcome(outcome, MORE)
    assert r.failed_hosts == [], r.messages
    sizes = [k for n in PWRITES.values() for k in range(1, n + 1)]
    merged = {n: s.values[0] for n, s in outcome.merged.items()}
    assert merged["least"] == 1
    assert merged["spread"] == (len(sizes), sum(sizes), sum(k * k for k in sizes))
    lin = [0] * 7  # underflow, 0-1 .. 8-9, overflow
    for k in sizes:
        lin[min(k // 2 + 1, 6)] += 1
    assert merged["lin"] == lin
    log: dict[int, int] = {}
    for k in sizes:
        log[llquantize_bucket(k, 2, 0, 4, 4)] = log.get(llquantize_bucket(k, 2, 0, 4, 4), 0) + 1
    assert {i: c for i, c in enumerate(merged["log"]) if c} == log
    # each host's printf records, tagged, in that host's order
    for host, n in PWRITES.items():
        lines = [ln.split("] ", 1)[1] for ln in r.output.splitlines()
                 if ln.startswith(f"[{host}] ")]
        assert lines == [str(k) for k in range(1, n + 1)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_ctrl_c_stops_every_host_and_the_command_prints_the_totals(cluster, sig):
    for name in PWRITES:
        (cluster.tmp / f"{name}.done").unlink(missing_ok=True)
    before = bpf_state()
    cmd = subprocess.Popen(
        [str(DTRACE_NB), "--cluster", cluster.address, "-q",
         "-c", _config(60).target_command, "-n", PROGRAM.replace("@sizes = quantize(arg2);", "")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not all((cluster.tmp / f"{n}.done").exists() for n in PWRITES):
        assert time.monotonic() < deadline and cmd.poll() is None, cmd.stderr.read()
        time.sleep(0.05)
    t0 = time.monotonic()
    cmd.send_signal(sig)
    out, err = cmd.communicate(timeout=60)
    assert time.monotonic() - t0 < 15  # the targets would sleep for 60 s
    assert cmd.returncode == 0, err
    rows = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.strip()}
    assert rows["pwrite64"] == [str(sum(PWRITES.values()))]
    assert settled_diff(before) == []


def test_workers_detach_by_themselves_when_the_scheduler_dies(own_cluster):

    before = bpf_state()
    cfg = SessionConfig("syscall::pwrite64:entry { @n = count(); }", quiet=True)
    runner = threading.Thread(target=lambda: _swallow(FleetRun(own_cluster.address, cfg).run),
                              daemon=True)
    runner.start()
    deadline = time.monotonic() + 60
    while len(bpf_state().programs - before.programs) < 2:  # one on each worker
        assert time.monotonic() < deadline
        time.sleep(0.2)
    own_cluster.scheduler.kill()
    own_cluster.scheduler.wait()
    t0 = time.monotonic()
    assert settled_diff(before, timeout=60) == []
    from dtrace_nb.fleet.worker import UNREACHABLE
    took = time.monotonic() - t0
    logs = {n: (own_cluster.tmp / f"{n}.log").read_text()[-3000:] for n in own_cluster.procs}
    assert took < UNREACHABLE + 15, (took, logs)  # 10.5 s when measured


def _swallow(fn):
    try:
        fn()
    except BaseException:  # noqa: BLE001 - the client loses its scheduler on purpose
        pass


# -- -p with a pid per host ---------------------------------------------------------------

# waits for a file, then N pwrite64() calls of 1..N bytes, then exits
WAITER = (
    "import os, sys, time\n"
    "while not os.path.exists(sys.argv[1]): time.sleep(0.01)\n"
    "fd = os.open(os.devnull, os.O_WRONLY)\n"
    "for k in range(1, int(sys.argv[2]) + 1): os.pwrite(fd, b'x' * k, 0)\n"
)


class Waiters:
    """One process per host that `-p` traces, each making its own host's number of calls
    once go() is called; reaped as they exit (a zombie would still look alive)."""

    def __init__(self, tmp: Path, names):
        self.go_file = tmp / f"go-{uuid.uuid4().hex[:8]}"
        self.procs = {n: subprocess.Popen([sys.executable, "-c", WAITER, str(self.go_file),
                                           str(PWRITES[n])]) for n in names}
        for p in self.procs.values():
            threading.Thread(target=p.wait, daemon=True).start()

    @property
    def pids(self) -> dict[str, int]:
        return {n: p.pid for n, p in self.procs.items()}

    def go(self) -> None:
        self.go_file.touch()

    def close(self) -> None:
        self.go()
        for p in self.procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture
def waiters(cluster):
    w = Waiters(cluster.tmp, list(PWRITES))
    yield w
    w.close()


def test_p_per_host_traces_each_hosts_own_process(cluster, waiters):
    before = bpf_state()
    cluster.when_live(2, waiters.go)
    r = run_fleet(cluster.address, SessionConfig(PROGRAM, quiet=True), pids=waiters.pids,
                  duration=60)
    assert r.failed_hosts == [], r.messages
    assert {h: s["target_pid"] for h, s in r.hosts.items()} == waiters.pids
    assert {h: s["stop_reason"] for h, s in r.hosts.items()} == \
        {"alpha": "target exited", "beta": "target exited"}
    per = r.by_host("calls")  # $target on each host is that host's own process
    assert dict(zip(per["host"], per["count"])) == PWRITES
    assert r["calls"]["count"].tolist() == [sum(PWRITES.values())]
    ns = list(PWRITES.values())
    assert r["bytes"]["sum"].tolist() == [sum(n * (n + 1) // 2 for n in ns)]
    assert settled_diff(before) == []


def test_the_command_takes_a_pid_per_host(cluster, waiters):
    cluster.when_live(2, waiters.go)
    pids = ",".join(f"{h}={p}" for h, p in waiters.pids.items())
    done = run_command("--cluster", cluster.address, "-q", "-p", pids,
                       "-n", PROGRAM.replace("@sizes = quantize(arg2);", ""))
    assert done.returncode == 0, done.stderr
    rows = {ln.split()[0]: ln.split()[1:] for ln in done.stdout.splitlines() if ln.strip()}
    assert rows["pwrite64"] == [str(sum(PWRITES.values()))]


def test_p_refusals_come_before_anything_is_loaded(cluster):
    before = bpf_state()
    cfg = SessionConfig(PROGRAM, quiet=True)
    me = os.getpid()
    cases = [  # (run_fleet's arguments, what the error says)
        ({"pids": {"alpha": me}, "hosts": ["alpha", "beta"]}, "no pid given for host beta"),
        ({"pids": {"alpha": me, "gamma": me}}, "no worker named gamma"),
        ({"pids": {"alpha": me, "beta": me}, "hosts": ["alpha"]},
         "-p names beta, which --hosts/--workers did not choose"),
    ]
    for kwargs, said in cases:
        with pytest.raises(DUsageError, match=re.escape(said)):
            run_fleet(cluster.address, cfg, duration=5, **kwargs)
    # a plain -p PID is one host's process
    one = SessionConfig(PROGRAM, quiet=True, target_pid=me)
    with pytest.raises(DUsageError, match=r"-p \d+: a pid is one host's process, and 2 "
                                          "hosts are chosen"):
        run_fleet(cluster.address, one, duration=5)
    assert settled_diff(before) == []
    # the command says so on stderr, in one line, and exits non-zero
    done = run_command("--cluster", cluster.address, "-p", f"alpha={me}", "--hosts",
                       "alpha,beta", "-n", "BEGIN { exit(0); }")
    assert done.returncode != 0
    assert "no pid given for host beta" in done.stderr and "Traceback" not in done.stderr
    # and a pid per host without a cluster
    done = run_command("-p", f"alpha={me}", "-n", "BEGIN { exit(0); }")
    assert done.returncode != 0
    assert "a pid per host needs --cluster" in done.stderr and "Traceback" not in done.stderr


def test_a_plain_p_with_one_host_chosen(cluster):
    w = Waiters(cluster.tmp, ["beta"])
    try:
        cluster.when_live(1, w.go)
        cfg = SessionConfig(PROGRAM, quiet=True, target_pid=w.pids["beta"])
        r = run_fleet(cluster.address, cfg, hosts=["beta"], duration=60)
    finally:
        w.close()
    assert r.failed_hosts == [], r.messages
    assert r["calls"]["count"].tolist() == [PWRITES["beta"]]


def test_the_magic_takes_a_pid_per_host_and_merges_frames(cluster, waiters):
    from tests.conftest import ipython_shell

    ip = ipython_shell()
    ip.run_line_magic("load_ext", "dtrace_nb")
    cluster.when_live(2, waiters.go)
    pids = ",".join(f"{h}={p}" for h, p in waiters.pids.items())
    ip.run_cell_magic("dtrace", f"--cluster {cluster.address} -q --frames -p {pids} -T 60",
                      "syscall::pwrite64:entry /pid == $target/ { trace(arg2); }")
    r = ip.user_ns["_dtrace"]
    assert isinstance(r, FleetResult), r
    assert r.failed_hosts == [], r.messages
    df = r.records_frame()  # one frame for the one clause, a host column first
    assert list(df.columns[:1]) == ["host"]
    # host by host, each host's records in its own (time) order
    assert list(zip(df["host"], df["trace"])) == \
        [(h, k) for h, n in PWRITES.items() for k in range(1, n + 1)]
    assert "[alpha]" not in r.output and "[beta]" not in r.output  # columns, not text


def test_frames_with_the_session_api(cluster):
    program = ("syscall::pwrite64:entry /pid == $target/ { printf(\"%d %d\", arg2, arg2 * 2); }"
               "\nsyscall::pwrite64:entry /pid == $target && arg2 == 1/ { trace(pid); }")
    cfg = SessionConfig(program, target_command=_config(0).target_command, quiet=True,
                        record_frames=True)
    r = run_fleet(cluster.address, cfg, duration=60)
    assert r.failed_hosts == [], r.messages
    first = r.records_frame(0)
    assert list(zip(first["host"], first["printf_1"], first["printf_2"])) == \
        [(h, k, 2 * k) for h, n in PWRITES.items() for k in range(1, n + 1)]
    second = r.records_frame(1)
    assert list(zip(second["host"], second["trace"])) == \
        [(h, r.hosts[h]["target_pid"]) for h in PWRITES]


# -- probe sets that differ between hosts ---------------------------------------------------

def test_probe_sets_that_differ_between_hosts_are_reported(cluster):
    # alpha's fleetbin has fleet_extra(), beta's does not: one description, other probes
    program = "pid$target::fleet_*:entry { @calls[probefunc] = count(); }"
    cfg = SessionConfig(program, target_command="fleetbin 7", quiet=True)
    outcome = FleetRun(cluster.address, cfg).run(duration=60)
    r = FleetResult.from_outcome(outcome, program)
    assert r.failed_hosts == [], r.messages
    assert "dtrace-nb: probes differ between hosts: beta lacks " \
           "pid$target:fleetbin:fleet_extra:entry" in r.messages, r.messages
    calls = r["calls"]
    assert dict(zip(calls["probefunc"], calls["count"])) == {"fleet_work": 14, "fleet_extra": 7}
    # different binaries, different C: each host compiled its own object
    assert all(h.data["objects_received"] == 0 for h in outcome.hosts)
    # the command says it on stderr, and prints the totals of both
    done = run_command("--cluster", cluster.address, "-q", "-c", "fleetbin 3", "-n", program)
    assert done.returncode == 0, done.stderr
    assert "dtrace-nb: probes differ between hosts: beta lacks " \
           "pid$target:fleetbin:fleet_extra:entry" in done.stderr
    rows = {ln.split()[0]: ln.split()[1:] for ln in done.stdout.splitlines() if ln.strip()}
    assert rows == {"fleet_work": ["6"], "fleet_extra": ["3"]}


def test_the_same_probes_everywhere_say_nothing(cluster):
    r = run_fleet(cluster.address, _config(0), duration=60)
    assert r.failed_hosts == []
    assert not any("probes differ" in m for m in r.messages), r.messages


# -- compile once per kernel flavour --------------------------------------------------------

def test_one_host_compiles_and_the_other_loads_its_object(cluster):
    # a constant no cache has seen: neither host has this object yet
    salt = int(uuid.uuid4().hex[:8], 16)
    program = f"syscall::pwrite64:entry /pid == $target/ {{ @n = sum(arg2 + {salt}); }}"
    cfg = SessionConfig(program, target_command=_config(0).target_command, quiet=True)
    outcome = FleetRun(cluster.address, cfg).run(duration=60)
    r = FleetResult.from_outcome(outcome, program)
    assert r.failed_hosts == [], r.messages
    ns = list(PWRITES.values())
    assert r["n"]["sum"].tolist() == [sum(n * (n + 1) // 2 + n * salt for n in ns)]
    data = {h.host: h.data for h in outcome.hosts}
    assert sorted(d["objects_received"] for d in data.values()) == [0, 1]
    assert sorted(len(d["shared_objects"]) for d in data.values()) == [0, 1]
    # the client deleted the shipped object from the scheduler
    from distributed import Client

    name = next(n for d in data.values() for n in d["shared_objects"])

    def left(dask_scheduler):
        ext = dask_scheduler.extensions
        return [*ext["variables"].variables, *ext["events"]._events,
                *ext["semaphores"].max_leases]

    with Client(cluster.address, timeout=30, set_as_default=False) as c:
        assert not [n for n in c.run_on_scheduler(left) if n.startswith(name)]
    # without sharing, each host compiles its own (another constant: no cache has it)
    program2 = program.replace(str(salt), str(salt + 1))
    cfg2 = SessionConfig(program2, target_command=_config(0).target_command, quiet=True)
    outcome = FleetRun(cluster.address, cfg2, share_objects=False).run(duration=60)
    assert [h.data["objects_received"] for h in outcome.hosts] == [0, 0]
    assert not any(h.data["compiled_from_cache"] for h in outcome.hosts)
