"""Every provider on the real kernel, through `dtrace-nb -s`: sdt, proc, sched, io, pid,
usdt (our own probes and Debian's python3.11), fbt (listing, code and the refusal this
kernel forces), probe listings, and a third-party provider registered by entry point.

Counts come from workloads whose events are known exactly: tests/workloads/sysload.c
(system calls), tests/workloads/userprobes.c (function calls and USDT probes), and shell
command lines whose forks, execs and exits are spelled out.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_language import run_d

pytestmark = pytest.mark.kernel
ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3.11"  # Debian's, built with USDT notes


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def build_c(tmp_path_factory, name: str, source: str, *flags: str,
            libs: tuple[str, ...] = ()) -> Path:
    """A workload of the test's own, compiled with gcc: its path."""
    d = tmp_path_factory.mktemp(name)
    (d / f"{name}.c").write_text(source)
    subprocess.run(["gcc", "-O1", *flags, "-o", str(d / name), str(d / f"{name}.c"), *libs],
                   check=True)
    return d / name


def agg_rows(text: str) -> dict[str, int]:
    """'key   value' rows of printed aggregations -> {key: value}."""
    rows = {}
    for line in text.splitlines():
        if not line.startswith(" "):
            continue  # the target's own output, or printf lines
        parts = line.split()
        if len(parts) >= 2 and re.fullmatch(r"-?\d+", parts[-1]):
            rows[" ".join(parts[:-1])] = int(parts[-1])
    return rows


# -- sdt ---------------------------------------------------------------------------------

def test_sdt_counts_a_tracepoint_exactly(tmp_path, workloads):
    out = ok(run_d(tmp_path, "sdt:syscalls::sys_enter_getppid /pid == $target/ { @ = count(); }",
                   extra=("-c", f"{workloads['sysload']} getppid 437")))
    assert out.split() == ["437"]


def test_sdt_typed_args_named_from_the_format_file(tmp_path, workloads):
    # sys_enter_openat's fields: __syscall_nr, dfd, filename, flags, mode
    prog = ("sdt:syscalls::sys_enter_openat /pid == $target && args[1] == -100/ "
            "{ @[copyinstr(args[2]), args[0]] = count(); }\n"
            "sdt:sched::sched_process_exec /pid == $target/ { printf(\"exec %s\\n\", args[0]); }")
    out = ok(run_d(tmp_path, prog, extra=("-c", f"{workloads['sysload']} enoent 25")))
    assert f"exec {workloads['sysload']}" in out
    rows = agg_rows(out)
    assert rows["/nonexistent/dtrace-nb-test 257"] == 25  # 257: openat's syscall number


def test_sdt_lv_lists_format_fields(tmp_path):
    out = ok(subprocess.run([sys.executable, "-m", "dtrace_nb.cli", "-lv", "-n",
                             "sdt:sched::sched_switch"], capture_output=True, text=True))
    assert re.search(r"^\s+\d+\s+sdt\s+sched\s+sched_switch$", out, re.M)
    types = re.findall(r"args\[(\d)\]: (.+)", out)
    assert types[:5] == [("0", "string"), ("1", "int32_t"), ("2", "int32_t"), ("3", "int64_t"),
                         ("4", "string")]


def test_every_generated_tracepoint_struct_compiles():
    """Format types the installed headers do not know (key_serial_t, newer enums) must
    never reach the compiler: every tracepoint's record struct compiles in one program."""
    from dtrace_nb.runtime.environment import import_bcc
    from dtrace_nb_providers._tracefs import events
    from dtrace_nb_providers._tracepoint import record
    from dtrace_nb_providers.sdt import groups

    decls = []
    for g in groups():
        for e in events(g):
            decls.append(record(g, e).declaration)
    assert len(decls) > 1000
    assert any("key_serial_t" == a.native_type for g in ("syscalls",)
               for e in events(g) for a in record(g, e).args)
    src = "#include <uapi/linux/ptrace.h>\n" + "\n".join(decls) + (
        "\nint dt_probe(struct dt_tp_sched__sched_switch *ctx) { return ctx->f_next_pid; }\n")
    bpf = import_bcc().BPF(text=src.encode())
    bpf.cleanup()


def test_unknown_and_misaligned_format_fields_map_to_sized_integers():
    from dtrace_nb_providers._tracefs import FormatField
    from dtrace_nb_providers._tracepoint import tracepoint_args

    fields = (FormatField("key_serial_t", "key", 8, 4, True),
              FormatField("char", "comm", 12, 16, False, 16),
              FormatField("u64", "odd", 28, 8, False),
              FormatField("__data_loc char[]", "name", 36, 4, False))
    rec = tracepoint_args("demo", "ev", fields)
    assert [(a.name, a.dtrace_type) for a in rec.args] == [
        ("key", "int32_t"), ("comm", "string"), ("odd", "uintptr_t"), ("name", "string")]
    assert "s32 f_key;" in rec.declaration and "u8 f_odd[8];" in rec.declaration
    assert "key_serial_t" not in rec.declaration


# -- proc: the stable provider, and the same events through the tracepoints underneath ---

# four children: two that exit normally, one whose exec fails (its sh exits 127), one sh
# that kills itself with SIGKILL; then the target exits with status 3
SHELL_RUN = ("/bin/sh -c '/bin/true; /bin/false; /nonexistent-dtnb; "
             "/bin/sh -c \"kill -9 \\$\\$\"; exit 3'")


def test_proc_life_cycle(tmp_path):
    prog = """
proc:::exec /progenyof($target)/ { @exec["exec", args[0]] = count(); }
proc:::exec-success /progenyof($target)/ { @ok["ok", execname] = count(); }
proc:::exec-failure /progenyof($target)/ { @fail["fail", args[0]] = count(); }
proc:::create /progenyof($target)/ { @create["create", args[0]->pr_ppid == $target] = count(); }
proc:::start /progenyof($target)/ { @start["start"] = count(); }
proc:::exit /progenyof($target)/ { @exit["exit", execname, args[0]] = count(); }
proc:::signal-send /progenyof($target) && args[2] == 9/ { @kill["kill", args[1]->pr_fname] = count(); }
"""
    out = ok(run_d(tmp_path, prog, extra=("-c", SHELL_RUN)))
    assert agg_rows(out) == {
        # the target's own exec of /bin/sh (released once the probes are live), then the
        # children's
        "exec /bin/sh": 2, "exec /bin/true": 1, "exec /bin/false": 1,
        "exec /nonexistent-dtnb": 1,
        "ok sh": 2, "ok true": 1, "ok false": 1,
        "fail 2": 1,  # ENOENT
        "create 1": 4, "start": 4,
        # CLD_EXITED (1) for all but the child that killed itself (CLD_KILLED, 2); the
        # failed-exec child is an sh, like the target
        "exit true 1": 1, "exit false 1": 1, "exit sh 1": 2, "exit sh 2": 1,
        "kill sh": 1,
    }, out


def test_proc_start_fires_in_the_child(tmp_path):
    prog = ('proc:::start /progenyof($target) && pid != $target/ { @[ppid == $target] = count(); }')
    out = ok(run_d(tmp_path, prog, extra=("-c", "sh -c '/bin/true; /bin/true; /bin/true'")))
    assert agg_rows(out) == {"1": 3} or out.split() == ["1", "3"]


def test_stable_exec_success_matches_the_tracepoint(tmp_path):
    prog = """
proc:::exec-success /progenyof($target)/ { printf("stable %d %s\\n", pid, execname); }
sdt:sched::sched_process_exec /progenyof($target)/ { printf("tracepoint %d %s\\n", pid, execname); }
"""
    out = ok(run_d(tmp_path, prog, extra=("-c", "sh -c '/bin/true; /bin/echo hi; /bin/true'")))
    stable = sorted(ln.split(None, 1)[1] for ln in out.splitlines() if ln.startswith("stable"))
    under = sorted(ln.split(None, 1)[1] for ln in out.splitlines() if ln.startswith("tracepoint"))
    assert len(stable) >= 4 and stable == under


# -- sched --------------------------------------------------------------------------------

def test_sched_sleep_wakeup_and_cpu_switches(tmp_path, workloads):
    # sysload sleep 200: one nanosleep of 200 ms -> the target sleeps and is woken at least
    # once, and is switched on and off CPU at least once each
    prog = """
sched:::sleep /pid == $target/ { @["sleep"] = count(); }
sched:::wakeup /args[1]->pr_pid == $target/ { @["wakeup"] = count(); }
sched:::enqueue /args[1]->pr_pid == $target/ { @["enqueue"] = count(); }
sched:::dequeue /args[1]->pr_pid == $target/ { @["dequeue"] = count(); }
sched:::on-cpu /pid == $target/ { @["on-cpu"] = count(); }
sched:::off-cpu /pid == $target/ { @["off-cpu"] = count(); }
sched:::off-cpu /args[1]->pr_pid == $target/ { @["switched-to"] = count(); }
"""
    done = run_d(tmp_path, prog, extra=("-c", f"{workloads['sysload']} sleep 200"))
    out = ok(done)
    # no key may be lost: the first insert of each key happens in the scheduler with
    # interrupts off (non-preallocated maps dropped 1-5 of them here)
    assert "drop" not in done.stderr, done.stderr
    rows = agg_rows(out)
    for name in ("sleep", "wakeup", "enqueue", "dequeue", "on-cpu", "off-cpu", "switched-to"):
        assert rows.get(name, 0) >= 1, (name, out)
    # every sleep is a dequeue (same hook); every switch to the target is an on-cpu of it
    assert rows["sleep"] == rows["dequeue"]
    assert rows["on-cpu"] == rows["switched-to"]


# -- io ------------------------------------------------------------------------------------

def test_io_start_and_done_of_an_fsynced_write(tmp_path):
    target = tmp_path / "io.dat"
    st_dev = os.stat(tmp_path).st_dev
    prog = """
io:::start /args[0]->b_flags & 0x100/ { @w[args[1]->dev_major, args[1]->dev_minor] = count();
    @bytes = sum(args[0]->b_bcount); }
io:::done { @done = count(); }
"""
    cmd = f"dd if=/dev/urandom of={target} bs=64k count=16 conv=fsync status=none"
    out = ok(run_d(tmp_path, prog, extra=("-c", cmd)))
    rows = agg_rows(out)
    key = f"{os.major(st_dev)} {os.minor(st_dev)}"
    assert rows.get(key, 0) >= 1, out
    nums = [int(x) for x in out.split() if x.isdigit()]
    assert max(nums) >= 16 * 65536  # the bytes written reached the device


# -- pid -----------------------------------------------------------------------------------

def test_pid_entry_return_counts_args_and_return_values(tmp_path, workloads):
    prog = """
pid$target:a.out:dtnb_work:entry { @calls = count(); @args = sum(arg0); }
pid$target:a.out:dtnb_work:return { @rets = sum(arg1); }
pid$target:userprobes:dtnb_leaf:entry { printf("leaf %d %d %d\\n", arg0, arg1, arg2); }
pid$target:libc.so.6:printf:entry { @printf = count(); }
"""
    out = ok(run_d(tmp_path, prog, extra=("-c", f"{workloads['userprobes']} 1000")))
    nums = [int(x) for x in out.split() if x.lstrip("-").isdigit()]
    assert "leaf 1 2 3" in out
    # aggregations in name order of first use: calls, args, rets, printf
    assert nums[-4:] == [1000, 499500, 1000 * 1000, 1], out


def test_pid_function_glob_and_offset(tmp_path, workloads):
    # the offset of dtnb_work's second instruction, from the disassembly
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(workloads["userprobes"])],
                         capture_output=True, text=True, check=True).stdout
    body = dis.split("<dtnb_work>:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    addrs = [int(ln.split(":")[0], 16) for ln in body if ln.strip()]
    off = addrs[1] - addrs[0]
    prog = (f"pid$target:a.out:dtnb_*:entry {{ @[probefunc] = count(); }}\n"
            f"pid$target:a.out:dtnb_work:{off:x} {{ @[\"offset\"] = count(); }}")
    out = ok(run_d(tmp_path, prog, extra=("-c", f"{workloads['userprobes']} 300")))
    assert agg_rows(out) == {"dtnb_leaf": 1, "dtnb_work": 300, "offset": 300}


def test_pid_path_module_without_process(tmp_path, workloads):
    path = workloads["userprobes"]
    prog = f"pid:{path}:dtnb_work:entry /pid == $target/ {{ @ = count(); }}"
    out = ok(run_d(tmp_path, prog, extra=("-c", f"{path} 77")))
    assert "userprobes: n 77 sum 5935 guarded 0" in out  # the target's own output
    assert out.split()[-1] == "77"


# -- usdt ----------------------------------------------------------------------------------

def test_usdt_probes_args_and_semaphores(tmp_path, workloads):
    prog = """
dtnb$target:::loop { @loops = count(); @isum = sum(arg0); }
dtnb$target:::guarded { @guarded = count(); }
dtnb$target:::done { printf("done %d in %s:%s:%s\\n", arg0, probemod, probefunc, probename); }
"""
    out = ok(run_d(tmp_path, prog, extra=("-c", f"{workloads['userprobes']} 200")))
    assert "done 200 in userprobes:main:done" in out
    nums = [int(x) for x in out.split() if x.isdigit()]
    # loop fires 200 times with i = 0..199; guarded fires only because its semaphore is set
    assert nums[-3:] == [200, 19900, 200], out


def test_usdt_string_argument(tmp_path, workloads):
    # arg1 of dtnb:loop points to "tick" on the program's stack
    prog = 'dtnb$target:::loop { @[copyinstr(arg1)] = count(); }'
    out = ok(run_d(tmp_path, prog, extra=("-c", f"{workloads['userprobes']} 100")))
    assert agg_rows(out) == {"tick": 100}


PY_WORK = """
import gc
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
for _ in range(3):
    fib(10)
gc.collect()
"""


def test_python_usdt_probes(tmp_path):
    script = tmp_path / "work.py"
    script.write_text(PY_WORK)
    prog = """
python$target:::function-entry /copyinstr(arg1) == "fib"/ { @["fib-entry"] = count(); }
python$target:::function-return /copyinstr(arg1) == "fib"/ { @["fib-return"] = count(); }
python$target:::line { @["line"] = count(); }
python$target:::gc-start { @["gc-start"] = count(); }
python$target:::gc-done { @["gc-done"] = count(); }
python$target:::import-find-load-start { @["import"] = count(); }
python$target:::audit { @["audit"] = count(); }
"""
    out = ok(run_d(tmp_path, prog, extra=("-c", f"{PYTHON} -S {script}")))
    rows = agg_rows(out)
    # fib(10) makes 177 calls; three times. Every probe python3.11 has fires.
    assert rows["fib-entry"] == 531 and rows["fib-return"] == 531
    assert rows["gc-start"] >= 1 and rows["gc-done"] == rows["gc-start"]
    assert rows["line"] > 531 and rows["import"] >= 1 and rows["audit"] >= 1


# -- fbt -----------------------------------------------------------------------------------

def test_fbt_lists_kernel_functions_with_btf_types(tmp_path):
    out = ok(subprocess.run([sys.executable, "-m", "dtrace_nb.cli", "-lv", "-n",
                             "fbt:vmlinux:vfs_read:entry"], capture_output=True, text=True))
    assert re.search(r"fbt\s+vmlinux\s+vfs_read entry", out)
    assert re.findall(r"args\[(\d)\]: (.+)", out) == [
        ("0", "struct file *"), ("1", "char *"), ("2", "size_t"), ("3", "loff_t *")]


def test_fbt_refuses_clearly_where_the_kernel_has_no_kprobes(tmp_path):
    from dtrace_nb.runtime.kernel import features

    if features.kprobes().available or features.fentry().available:
        pytest.skip("this kernel has kprobes: the attach itself is tested instead")
    done = run_d(tmp_path, "fbt::vfs_read:entry { @[execname] = count(); }")
    assert done.returncode != 0
    assert "the fbt provider cannot attach on this kernel: it has no kprobes" in done.stderr
    assert "CONFIG_KPROBE_EVENTS" in done.stderr and "Traceback" not in done.stderr


def test_fbt_generated_code_compiles_and_loads():
    """With the kprobe mechanism forced, the fbt program compiles and the verifier accepts
    it; attaching then fails with the kernel's reason on this kernel."""
    from dtrace_nb.errors import DEnvironmentError
    from dtrace_nb.probes import ProbeCatalog, load_providers
    from dtrace_nb.runtime.kernel import features
    from dtrace_nb.runtime.compile import compile_program
    from dtrace_nb.session import Session, SessionConfig
    from dtrace_nb.result.result import run_session
    from dtrace_nb_providers.fbt import FbtProvider

    provs = [p for p in load_providers() if p.name != "fbt"] + [FbtProvider("kprobe")]
    src = ("fbt::vfs_read:entry { @[execname] = sum(arg2); }\n"
           "fbt::vfs_read:return /arg1 > 0/ { @r = quantize(arg1); }")
    _checked, program = compile_program(SessionConfig(src), ProbeCatalog(provs))
    assert "struct pt_regs *ctx" in program.c_source and "ctx->dx" in program.c_source
    assert "ctx->ax" in program.c_source
    session = Session(SessionConfig(src), catalog=ProbeCatalog(provs))
    result = run_session(session, duration=0.2)
    if features.kprobes().available:
        assert result.error is None
        return
    assert isinstance(result.error, DEnvironmentError)
    assert result.error.message == ("cannot attach kprobe vfs_read: not possible on this "
                                    f"kernel: {features.kprobes().detail}")
    assert "CONFIG_KPROBE_EVENTS" in result.error.hint
    assert session.running is False and session._loaded is None


# -- listings and third-party providers ------------------------------------------------------

def test_listing_dataframe_through_the_magic():
    from tests.conftest import ipython_shell

    ip = ipython_shell()
    ip.run_line_magic("load_ext", "dtrace_nb")
    df = ip.run_line_magic("dtrace", "-l -v -n sdt:sched::sched_process_exec")
    assert list(df.columns) == ["ID", "PROVIDER", "MODULE", "FUNCTION", "NAME", "ARGS",
                                "STABILITY"]
    rows = {(r.PROVIDER, r.NAME): r for r in df.itertuples()}
    assert rows[("sdt", "sched_process_exec")].ARGS == "string filename, int32_t pid, int32_t old_pid"
    assert rows[("sdt", "sched_process_exec")].STABILITY == "Unstable"
    df = ip.run_line_magic("dtrace", "-l -v -n proc:::exit")
    assert df.loc[0, "ARGS"] == "int" and df.loc[0, "STABILITY"] == "Evolving"


def test_listing_every_probe_covers_every_provider():
    out = ok(subprocess.run([sys.executable, "-m", "dtrace_nb.cli", "-l"], capture_output=True,
                            text=True, timeout=60))
    providers = {ln.split()[1] for ln in out.splitlines()[1:]}
    assert {"dtrace", "syscall", "profile", "sdt", "proc", "sched", "io", "fbt"} <= providers
    ids = [int(ln.split()[0]) for ln in out.splitlines()[1:]]
    assert ids == list(range(1, len(ids) + 1))


def test_third_party_provider_by_entry_point(tmp_path, workloads):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "thirdparty"))
    path = tmp_path / "demo.d"
    path.write_text("demo:::getppid /pid == $target/ { @[arg0] = count(); }")
    done = subprocess.run([sys.executable, "-m", "dtrace_nb.cli", "-q", "-s", str(path), "-c",
                           f"{workloads['sysload']} getppid 321"], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=60)
    assert ok(done).split() == ["110", "321"]
    listed = subprocess.run([sys.executable, "-m", "dtrace_nb.cli", "-l", "-n", "demo:::"],
                            capture_output=True, text=True, env=env, cwd=ROOT)
    assert re.search(r"demo\s+getppid$", ok(listed), re.M)


def test_fbt_fentry_code_compiles_and_the_kernel_refusal_is_explained():
    """With fentry forced, the program reads the function's own arguments (ctx[i]) and its
    return value after them (loaded as fentry/fexit programs naming vfs_read's BTF id);
    this kernel refuses to load them, which comes back as an error, with nothing left
    loaded."""
    from dtrace_nb.probes import ProbeCatalog, load_providers
    from dtrace_nb.runtime.kernel import features
    from dtrace_nb.runtime.compile import compile_program
    from dtrace_nb.session import Session, SessionConfig
    from dtrace_nb.result.result import run_session
    from dtrace_nb_providers.fbt import FbtProvider

    provs = [p for p in load_providers() if p.name != "fbt"] + [FbtProvider("fentry")]
    src = ("fbt::vfs_read:entry { @[execname] = sum(arg2); }\n"
           "fbt::vfs_read:return /arg1 > 0/ { @r = quantize(arg1); }")
    _checked, program = compile_program(SessionConfig(src), ProbeCatalog(provs))
    c = program.c_source
    assert c.count("(unsigned long long *ctx) {") == 2 and "ctx[2]" in c and "ctx[4]" in c
    from dtrace_nb.runtime.attach import load_attributes
    from dtrace_nb.runtime.btf import function_btf_id
    from dtrace_nb.runtime.kernel.bpf import BPF_TRACE_FENTRY, BPF_TRACE_FEXIT
    kinds = [load_attributes(fn.binding.attach) for fn in program.functions]
    vfs_read = function_btf_id("vfs_read")
    assert sorted((k.expected_attach_type, k.attach_btf_id) for k in kinds) == [
        (BPF_TRACE_FENTRY, vfs_read), (BPF_TRACE_FEXIT, vfs_read)]
    session = Session(SessionConfig(src), catalog=ProbeCatalog(provs))
    result = run_session(session, duration=0.2)
    if features.fentry().available:
        assert result.error is None
        return
    assert "the kernel refused to load the program for clause 1" in result.error.message
    assert "Operation not permitted" in result.error.message
    assert session._loaded is None
