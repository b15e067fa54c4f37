"""DTrace's translated structures on the real kernel: curpsinfo, curlwpsinfo, curcpu,
fds[], uregs[], caller/ucaller, each checked against a ground truth the test knows (the
target's argv and pid, the file a workload opened at a known descriptor, the system call
registers the kernel saved), and the members Linux cannot supply refused with a reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_language import refused, run_d, traced
from tests.test_providers import ok

pytestmark = pytest.mark.kernel

PYTHON = sys.executable


def _fstype_of(path: Path) -> str:
    """The filesystem type of `path`, from /proc/self/mounts (the longest mount point)."""
    best = ("/", "")
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _dev, point, fstype = line.split()[:3]
        point = point.replace("\\040", " ")
        inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, fstype)
    return best[1]


def test_curpsinfo_of_a_target_with_known_argv(tmp_path, workloads):
    cmd = f"{workloads['sysload']} getppid 3"
    prog = '''
    syscall::getppid:entry /pid == $target/ {
        printf("%d %d %d %d\\n", curpsinfo->pr_pid, $target, curpsinfo->pr_ppid, ppid);
        printf("[%s] [%s]\\n", curpsinfo->pr_psargs, curpsinfo->pr_fname);
        printf("%d %d %d %d %d\\n", curpsinfo->pr_uid, curpsinfo->pr_gid, curpsinfo->pr_euid,
               curpsinfo->pr_egid, curpsinfo->pr_dmodel == PR_MODEL_LP64);
        printf("%d %d %d\\n", curpsinfo->pr_nlwp, curpsinfo->pr_sid,
               curpsinfo->pr_addr == (uintptr_t)curthread);
        printf("%d %s %s\\n", curpsinfo->pr_argc,
               copyinstr(*(uint64_t *)copyin(curpsinfo->pr_argv + 8, 8)),
               copyinstr(*(uint64_t *)copyin(curpsinfo->pr_envp, 8)));
        exit(0);
    }'''
    lines = traced(tmp_path, prog, cmd).splitlines()
    pr_pid, target, pr_ppid, ppid = map(int, lines[0].split())
    assert pr_pid == target and pr_ppid == ppid and ppid != pr_pid
    assert lines[1] == f"[{cmd[:79]}] [sysload]"
    assert lines[2] == f"{os.getuid()} {os.getgid()} {os.geteuid()} {os.getegid()} 1"
    # the target inherits this process's session (0 where its leader is a kernel thread's child)
    assert lines[3] == f"1 {os.getsid(0)} 1"
    argc, argv1, env0 = lines[4].split(" ", 2)
    assert (argc, argv1) == ("3", "getppid") and "=" in env0  # envp[0] is NAME=value


def test_curpsinfo_pgid_and_sid_are_the_targets(tmp_path):
    # the target runs os.setsid(): it leads a new session and process group of its own
    script = "import os; os.setsid(); os.getppid()"
    prog = '''
    syscall::getppid:entry /pid == $target/ {
        printf("%d %d\\n", curpsinfo->pr_pgid - pid, curpsinfo->pr_sid - pid);
        exit(0);
    }'''
    assert traced(tmp_path, prog, f"{PYTHON} -c '{script}'") == "0 0\n\n"


def test_curlwpsinfo_and_curcpu(tmp_path, workloads):
    prog = '''
    syscall::getppid:entry /pid == $target/ {
        printf("%d %c %d %d\\n", curlwpsinfo->pr_lwpid == tid, curlwpsinfo->pr_sname,
               curlwpsinfo->pr_state == SRUN, curlwpsinfo->pr_onpro == cpu);
        printf("%s %d\\n", curlwpsinfo->pr_name, curlwpsinfo->pr_pri);
        printf("%d %d %d %d %d\\n", curcpu->cpu_id == cpu, curcpu->cpu_id >= 0,
               curcpu->cpu_lgrp, curcpu->cpu_chip, chip == curcpu->cpu_chip);
        printf("%d %d\\n", lgrp, pset);
        exit(0);
    }'''
    cmd = f"nice -n 7 {workloads['sysload']} getppid 3"
    lines = traced(tmp_path, prog, cmd).splitlines()
    assert lines[0] == "1 R 1 1"  # a thread making a system call is running
    # a SCHED_OTHER thread's priority is 120 + its nice value (nice -n 7 adds to ours)
    assert lines[1] == f"sysload {120 + os.nice(0) + 7}"
    chip = int(Path("/sys/devices/system/cpu/cpu0/topology/physical_package_id").read_text())
    assert lines[2] == f"1 1 0 {chip} 1"
    assert lines[3] == "0 0"  # one NUMA node; Linux has no processor sets


def test_fds_of_a_file_opened_at_a_known_descriptor(tmp_path):
    data = tmp_path / "sub dir" / "known.txt"
    data.parent.mkdir()
    data.write_text("0123456789")
    # the target opens the file, moves it to fd 7, seeks to 5 and reads 1 byte from it
    script = (f"import os; fd = os.open({str(data)!r}, os.O_RDONLY); os.dup2(fd, 7); "
              "os.lseek(7, 5, 0); os.read(7, 1)")
    prog = '''
    syscall::read:entry /pid == $target && arg0 == 7/ {
        printf("%s|%s|%s\\n", fds[7].fi_pathname, fds[arg0].fi_name, fds[7].fi_dirname);
        printf("%s|%s|%d|%d\\n", fds[7].fi_fs, fds[7].fi_mount, fds[7].fi_offset,
               fds[7].fi_oflags & 3);
        printf("%s|%s|%d\\n", fds[90].fi_pathname, fds[-1].fi_name, fds[90].fi_offset);
        exit(0);
    }'''
    lines = traced(tmp_path, prog, f"{PYTHON} -c \"{script}\"").splitlines()
    real = data.resolve()
    assert lines[0] == f"{real}|known.txt|{real.parent}"
    # fi_mount: "<unknown>" for every open file, as dtrace-utils' io.d has it
    assert lines[1] == f"{_fstype_of(real)}|<unknown>|5|0"  # O_RDONLY
    assert lines[2] == "<none>|<none>|0"  # not open: DTrace's translator gives "<none>"


# Programs over tests/workloads/sysload (its mode and count) that print exactly this:
# (id, mode, program, output)
SYSLOAD_CASES = [
    # sysload's write mode writes to /dev/null, which it opened itself (fd 3)
    ("fds-of-standard-descriptors", "write 2", '''
    syscall::write:entry /pid == $target/ {
        printf("%s %s %d\\n", fds[arg0].fi_pathname, fds[arg0].fi_fs, fds[arg0].fi_oflags & 3);
        exit(0);
    }''',
     "/dev/null devtmpfs 1\n\n"),  # O_WRONLY
    # at system call entry the user registers hold the call's number (orig_ax, R_ERR in
    # regs.d's numbering) and its arguments (rdi, rsi, rdx): write(fd, "x", 1) is call 1
    ("uregs-are-the-saved-system-call-registers", "write 2", '''
    syscall::write:entry /pid == $target/ {
        printf("%d %d %d %d\\n", uregs[R_ERR], uregs[R_RDI] == arg0, uregs[R_RSI] == arg1,
               uregs[R_RDX]);
        printf("%d %d %d\\n", uregs[R_PC] == uregs[R_RIP], uregs[R_SP] != 0,
               uregs[R_PC] < 0x800000000000);
        exit(0);
    }''',
     "1 1 1 1\n1 1 1\n\n"),
    # task_struct members of the target's thread: its comm, ids, parent, an embedded struct
    # (thread.fsbase is what uregs[R_FS] reads), a pointer chain, a bit-field (a running
    # thread is not frozen) and a string comparison with the char array
    ("curthread-members-through-btf", "getppid 3", '''
    syscall::getppid:entry /pid == $target/ {
        printf("%s %d %d %d\\n", curthread->comm, curthread->pid == tid,
               curthread->tgid == pid, curthread->real_parent->tgid == ppid);
        printf("%d %d %d\\n", curthread->thread.fsbase == uregs[R_FS], curthread->frozen,
               curthread->comm == "sysload");
        printf("%d\\n", curthread->mm->arg_start == curthread->mm->arg_start);
        exit(0);
    }''',
     "sysload 1 1 1\n1 0 1\n1\n\n"),
    # execname, psargs and string variables give their characters; past the end, 0
    ("strings-are-indexable", "getppid 3", '''
    syscall::getppid:entry /pid == $target/ {
        s = curpsinfo->pr_psargs;
        self->t = "xyz";
        printf("%c%c%c %c %c %d %d\\n", execname[0], execname[1], execname[6], s[strlen(s) - 1],
               self->t[2], self->t[3], s[-1]);
        exit(0);
    }''',
     "syd 3 z 0 0\n\n"),  # s(0) y(1) ... d(6) of "sysload"
    # sched:::dequeue fires as the target's thread goes to sleep (nanosleep): its
    # lwpsinfo_t and psinfo_t arguments are that thread's, as curlwpsinfo/curpsinfo are
    ("sched-translated-args-of-a-sleeping-thread", "sleep 200", '''
    sched:::dequeue /pid == $target/ {
        printf("%d %c %d %d %d %d\\n", args[0]->pr_state == SSLEEP, args[0]->pr_sname,
               args[0]->pr_lwpid == tid, args[0]->pr_onpro == cpu,
               args[0]->pr_addr == (uintptr_t)curthread, args[0]->pr_flag);
        printf("%d %d %d %d %d\\n", args[1]->pr_pgid == curpsinfo->pr_pgid,
               args[1]->pr_sid == curpsinfo->pr_sid, args[1]->pr_nlwp,
               args[1]->pr_dmodel == PR_MODEL_LP64, args[1]->pr_addr == curpsinfo->pr_addr);
        exit(0);
    }''',
     "1 S 1 1 1 0\n1 1 1 1 1\n\n"),
]


@pytest.mark.parametrize("name, mode, prog, expected", SYSLOAD_CASES,
                         ids=[c[0] for c in SYSLOAD_CASES])
def test_output_over_sysload(tmp_path, workloads, name, mode, prog, expected):
    assert traced(tmp_path, prog, f"{workloads['sysload']} {mode}") == expected


def test_caller_and_ucaller(tmp_path, workloads):
    # a kernel address for caller (the kernel's half of the address space), a user one for
    # ucaller, inside sysload's text (mapped below the libraries and the stack)
    prog = '''
    pid$target::do_getppid:entry {
        printf("%d %d\\n", ucaller > 0x1000, ucaller < 0x800000000000);
        exit(0);
    }
    syscall::getppid:entry /pid == $target/ {
        printf("%d\\n", caller >= 0xffff800000000000);
    }'''
    out = traced(tmp_path, prog, f"{workloads['sysload']} getppid 1")
    assert out.splitlines()[0] == "1 1"


REFUSED = [
    ("curpsinfo->pr_size", "translator does not define conversion for member: pr_size"),
    ("curlwpsinfo->pr_nice", "translator does not define conversion for member: pr_nice"),
    ("curlwpsinfo->pr_clname", "lwpsinfo_t.pr_clname on Linux: Linux scheduling classes"),
    ("curpsinfo->pr_nosuch", "psinfo_t has no member 'pr_nosuch'"),
    ("curpsinfo.pr_pid", "psinfo_t * is a pointer: use ->"),
    ("fds[0]->fi_name", "fileinfo_t is a struct, not a pointer: use ."),
    ("uregs[26]", "uregs[]: index out of bounds (26)"),
    ("uregs[arg0]", "uregs[ ] argument #1 is incompatible with prototype:\n"
                    "\tprototype: integer constant\n\t argument: int64_t"),
    ("curpsinfo", "a variable cannot hold psinfo_t"),
]


@pytest.mark.parametrize("expr,message", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_with_a_reason(tmp_path, expr, message):
    err = refused(tmp_path, f"BEGIN {{ x = {expr}; exit(0); }}")
    assert message in err, err
    assert "1:" in err and "Traceback" not in err


CURTHREAD_REFUSED = [
    ("curthread->nosuch", "1:13", "struct task_struct has no member named 'nosuch'"),
    ("curthread.pid", "1:13", "is a pointer: use ->"),
    ("curthread->thread->fsbase", "1:13", "struct thread_struct is a struct, not a pointer"),
]


@pytest.mark.parametrize("expr,where,message", CURTHREAD_REFUSED,
                         ids=[r[0] for r in CURTHREAD_REFUSED])
def test_curthread_member_errors(tmp_path, expr, where, message):
    err = refused(tmp_path, f"BEGIN {{ x = {expr}; exit(0); }}")
    assert message in err and where in err, err


def test_cwd_and_root_of_the_target(tmp_path):
    where = tmp_path / "a b" / "c"
    where.mkdir(parents=True)
    script = f"import os; os.chdir({str(where)!r}); os.getppid()"
    prog = '''
    syscall::getppid:entry /pid == $target/ {
        printf("%s|%s\\n", cwd, root);
        exit(0);
    }'''
    out = traced(tmp_path, prog, f"{PYTHON} -c \"{script}\"")
    assert out == f"{where.resolve()}|/\n\n"


def test_fds_of_a_pipe_and_a_socket(tmp_path):
    # d_path() names a pipe "pipe:[INODE]" and a socket "socket:[INODE]"; the target prints
    # both inode numbers before it writes to the pipe (at fd 9; the socket is at fd 10)
    script = tmp_path / "pipes.py"
    script.write_text(
        "import os, socket, sys\n"
        "r, w = os.pipe(); os.dup2(w, 9)\n"
        "s = socket.socket(); os.dup2(s.fileno(), 10)\n"
        "sys.stdout.write(f'ino {os.fstat(9).st_ino} {os.fstat(10).st_ino}\\n')\n"
        "sys.stdout.flush()\n"
        "os.write(9, b'x')\n")
    prog = '''
    syscall::write:entry /pid == $target && arg0 == 9/ {
        printf("%s %s %s\\n", fds[9].fi_pathname, fds[10].fi_pathname, fds[9].fi_fs);
        exit(0);
    }'''
    lines = traced(tmp_path, prog, f"{PYTHON} {script}").splitlines()
    pipe, sock = next(x for x in lines if x.startswith("ino ")).split()[1:]
    assert f"pipe:[{pipe}] socket:[{sock}] pipefs" in lines


def test_curcpu_is_an_address_of_its_cpu(tmp_path):
    # curcpu is a value too (an address, as in dtrace-utils): the same on one CPU for the
    # whole session, another on each CPU; usable in arithmetic and comparisons
    prog = '''
    BEGIN { x = curcpu; printf("%d %d\\n", x == curcpu, ((int64_t)curcpu >> 8) != 0); }
    profile-997 { @[cpu, (uint64_t)curcpu] = count(); }
    tick-1500ms { exit(0); }
    END { printa("%d %u %@d\\n", @); }'''
    # a busy process per CPU, so that profile-997 samples every CPU (an idle one may
    # give no sample in 1.5 s)
    spinners = [subprocess.Popen(["sh", "-c", "while :; do :; done"])
                for _ in range(os.cpu_count())]
    try:
        lines = ok(run_d(tmp_path, prog)).splitlines()
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    assert lines[0] == "1 1"
    rows = [tuple(map(int, x.split())) for x in lines[1:lines.index("", 1)]]
    pairs = [(c, a) for c, a, _n in rows]
    cpus = {c for c, _ in pairs}
    assert len(cpus) == os.cpu_count() == len(pairs)  # one address per CPU
    assert len({a for _, a in pairs}) == len(pairs)


def test_char_array_members_are_bounded(tmp_path):
    err = refused(tmp_path, "BEGIN { trace(curlwpsinfo->pr_name[256]); exit(0); }")
    assert "1:36: index outside array bounds: 256, max is 16" in err


def test_curthread_arrays_of_structs(tmp_path, workloads):
    # thread_pid->numbers[0].nr is the thread id in the initial namespace; the target's
    # RLIMIT_NOFILE (7) soft limit is what `prlimit` set for it
    prog = '''
    syscall::getppid:entry /pid == $target/ {
        printf("%d %d\\n", curthread->thread_pid->numbers[0].nr == tid,
               curthread->signal->rlim[7].rlim_cur);
        exit(0);
    }'''
    cmd = f"prlimit --nofile=321:4096 {workloads['sysload']} getppid 3"
    out = traced(tmp_path, prog, cmd)
    assert out == "1 321\n\n"


def test_pr_start_is_when_the_target_started(tmp_path, workloads):
    import time
    prog = '''
    syscall::getppid:entry /pid == $target/ {
        printf("%d %d %d\\n", curpsinfo->pr_start.tv_sec, curpsinfo->pr_start.tv_nsec,
               curpsinfo->pr_start.tv_nsec == curlwpsinfo->pr_start.tv_nsec);
        exit(0);
    }'''
    before = time.time()
    out = traced(tmp_path, prog, f"{workloads['sysload']} getppid 3")
    after = time.time()
    sec, nsec, same = map(int, out.split())
    assert before - 1 <= sec + nsec / 1e9 <= after + 1 and 0 <= nsec < 10**9
    assert same == 1  # one thread: the process started when its thread did
