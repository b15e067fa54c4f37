"""The traced process: `-c CMD` (started by us, held until probes are live) or `-p PID`.

`-c` splits CMD like a shell would (shlex) but runs no shell interpreter on it: a tiny
`/bin/sh` stub waits on a pipe, then `exec`s the command with its arguments passed as
"$@", so the process keeps its pid ($target) from the stub through the exec and starts
running only when dtrace-nb releases it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import threading
from typing import Optional

from dtrace_nb.errors import DUsageError
from dtrace_nb.runtime.symbols import warm_user_symbols

# The stub reads one line from its stdin (our pipe), then execs the command with stdin from
# /dev/null.
_GATE = 'read _; exec "$@" </dev/null'
# The stub is started through setpriv(1) where there is one, so that it and the command it
# becomes are killed if we die without stopping them (SIGKILL, a Dask worker killed
# mid-trace), as dtrace(1) kills a process it created when it lets go of it. setpriv runs
# before the probes are live; the death signal survives the exec of the command. (It
# follows the thread that started the stub, which lives until Session.stop has dealt with
# the target.)
_KILLED_WITH_US = ("setpriv", "--pdeathsig", "KILL", "--")


def _exe_of(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


class Target:
    def __init__(self, pid: int, proc: Optional[subprocess.Popen] = None,
                 gate_fd: Optional[int] = None, capture: bool = False, exe: str = ""):
        self.pid = pid
        # the executable the process runs once released (for -c: the command's, not the
        # gate's /bin/sh)
        self.exe = exe or _exe_of(pid)
        self.proc = proc
        self._gate_fd = gate_fd
        self.output: list[str] = []
        self._reader: Optional[threading.Thread] = None
        self._symbols_warm = False
        if proc is not None and capture and proc.stdout is not None:
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()

    @classmethod
    def open(cls, command: Optional[str], pid: Optional[int],
             capture: bool = False) -> Optional["Target"]:
        """The run's target: -c's command (started, held until release()), -p's process,
        or none. The caller records it under deferred_interrupts(): a Ctrl-C between the
        spawn and the recording would leave a child and a pipe fd nobody frees."""
        if command:
            return cls.spawn(command, capture=capture)
        return cls.attach(pid) if pid is not None else None

    @classmethod
    def spawn(cls, command: str, capture: bool = False) -> "Target":
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise DUsageError(f"-c {command!r}: {exc}") from None
        if not argv:
            raise DUsageError("-c needs a command")
        if shutil.which(argv[0]) is None:
            raise DUsageError(f"-c: command not found: {argv[0]}")
        r, w = os.pipe()
        wrap = list(_KILLED_WITH_US) if shutil.which(_KILLED_WITH_US[0]) else []
        proc = subprocess.Popen([*wrap, "/bin/sh", "-c", _GATE, "sh", *argv], stdin=r,
                                stdout=subprocess.PIPE if capture else None,
                                stderr=subprocess.STDOUT if capture else None,
                                close_fds=True,
                                **({"text": True} if capture else {}))
        os.close(r)
        return cls(proc.pid, proc, w, capture, exe=os.path.realpath(shutil.which(argv[0]) or ""))

    @classmethod
    def attach(cls, pid: int) -> "Target":
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise DUsageError(f"-p {pid}: no such process") from None
        return cls(pid)

    def release(self) -> None:
        if self._gate_fd is not None:
            try:
                os.write(self._gate_fd, b"\n")
            finally:
                os.close(self._gate_fd)
                self._gate_fd = None

    def exited(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is not None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        # a -p process that has exited but whose parent has not reaped it yet (a zombie)
        # runs no more: its pid still answers kill(0)
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        return state in (b"Z", b"X")

    @property
    def returncode(self) -> Optional[int]:
        return self.proc.returncode if self.proc is not None else None

    def kill(self) -> None:
        """Stop a target we started that is still running (tracing ended before it did)."""
        if self._gate_fd is not None:
            os.close(self._gate_fd)
            self._gate_fd = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.finish()

    def close(self) -> None:
        """Tracing is over: a command we started that still runs is stopped; otherwise
        its output is read to the end."""
        if self.proc is not None and not self.exited():
            self.kill()
        else:
            self.finish()

    def warm_symbols(self) -> None:
        """ustack() frames are symbolised when printed, maybe after the target exited; bcc
        can still do it then if it read the process's mappings while the process lived. So
        read them once the target runs its own executable (after the -c gate's exec)."""
        if self._symbols_warm:
            return
        exe = _exe_of(self.pid)
        if not exe:
            self._symbols_warm = True  # gone: nothing more to learn
            return
        if self.exe and os.path.realpath(exe) != os.path.realpath(self.exe):
            return  # still the gate's /bin/sh
        warm_user_symbols(self.pid)
        self._symbols_warm = True

    def finish(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=2)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
