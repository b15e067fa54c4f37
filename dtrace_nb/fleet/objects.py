"""Compile once per kernel flavour: the workers of one fleet run share the compiled
objects they make through the Dask scheduler (runtime/compiler.py asks this exchange
before running clang).

The first worker that needs an object of a flavour key (runtime/compiler.flavour_key: the
C text, flags, bcc, kernel release and build, kernel headers) wins the run's lock for that
key, compiles, leaves the object in a Dask Variable and sets an Event saying it is there;
the others of the same key, finding the lock taken, wait on the Variable and load what it
holds (one round trip each, all at once). One that wins the lock after the object is
there reads it. A worker of another flavour has another key and compiles its own; a
worker that waits longer than WAIT (the compiling worker died) compiles its own. The
client deletes the Variables, Events and Locks when the run ends (their names come back in
each host's result). What travels is the compiler's JSON (instructions and map declarations); each
host still loads it through its own verifier.
"""

from __future__ import annotations

from typing import Callable, Optional

from dtrace_nb.runtime.compiler import CompiledObject

# a worker waits this long for another to compile an object, then compiles it itself
WAIT = 60.0


class DaskObjects:
    """runtime/compiler.py's ObjectExchange over a fleet run's Dask Lock and Variables."""

    def __init__(self, run_id: str, client=None):
        self.run_id, self.client = run_id, client  # the worker's Dask client
        self.published: list[str] = []  # Variables this worker filled (the client frees them)
        self.received = 0               # objects this worker read instead of compiling

    def _names(self, key: str) -> tuple[str, str]:
        base = f"dtrace-nb-{self.run_id}-object-{key[:32]}"
        return base + "-lock", base

    def share(self, key: str, build: Callable[[], CompiledObject]) -> CompiledObject:
        from distributed import Event, Lock, Variable  # on a worker: distributed is there

        lock_name, var_name = self._names(key)
        try:
            c = self.client
            # the Lock finds the worker's client itself (compiles run in the task's thread)
            lock, var = Lock(lock_name), Variable(var_name, client=c)
            there = Event(var_name + "-set", client=c)
            won = lock.acquire(blocking=False)
        except Exception:  # noqa: BLE001 - no scheduler to share through: compile here
            return build()
        if not won or there.is_set():  # another host compiles it, or did
            try:
                obj = self._read(var)
            finally:
                if won:
                    self._release(lock)
            return obj if obj is not None else build()  # "" : the compile failed there
        try:
            try:
                obj = build()
            except BaseException:
                self._offer(var, there, "")  # the others try (and fail) on their own
                raise
            self._offer(var, there, obj.to_json())
            return obj
        finally:
            self._release(lock)

    def _offer(self, var, there, text: str) -> None:
        try:
            var.set(text)
            self.published.append(var.name)
            there.set()
        except Exception:  # noqa: BLE001 - they wait WAIT, then compile their own
            pass

    def _read(self, var) -> Optional[CompiledObject]:
        try:
            obj = CompiledObject.from_json(var.get(timeout=WAIT))
        except Exception:  # noqa: BLE001 - not shipped in time, or damaged: compile here
            return None
        self.received += 1
        return obj

    @staticmethod
    def _release(lock) -> None:
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - the lock's lease ends with its holder anyway
            pass
