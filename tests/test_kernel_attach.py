"""The kernel layer on the real kernel: each attach mechanism's path, the typed map
classes, and the kprobe path, which this kernel cannot run.

- kprobes: the fbt program of a kprobe binding loads as BPF_PROG_TYPE_KPROBE here, and its
  attach says why it is not possible; where the kernel has kprobes, a kprobe and a
  kretprobe on vfs_read count a workload's reads exactly (here: xfail, with the reason).
- uprobes both ways the kernel offers them: the uprobe PMU and tracefs uprobe_events (the
  way kprobes go on kernels without the kprobe PMU), counting calls, return values and a
  USDT probe behind its semaphore exactly, and leaving no tracefs probe behind.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np
import pytest

from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.probes import ProbeCatalog, load_providers
from dtrace_nb.runtime.attach import KprobeProbe
from dtrace_nb.runtime.environment import import_bcc
from dtrace_nb.runtime.kernel import bpf, features, tracefs
from dtrace_nb.runtime.maps import (ArrayMap, HashMap, MapSpec, PerCpuArrayMap, PerCpuHashMap,
                                    create_map)
from dtrace_nb.runtime.program import LoadedProgram
from dtrace_nb.runtime.compile import compile_program
from dtrace_nb.result.result import run_session
from dtrace_nb.session import Session, SessionConfig
from dtrace_nb_providers.fbt import FbtProvider
from tests.leakcheck import bpf_state, settled_diff

pytestmark = pytest.mark.kernel

KPROBES = features.kprobes()
READS = 800  # sysload read N: call i reads 1 << (i % 8) bytes of /dev/zero
READ_BYTES = READS // 8 * sum(1 << i for i in range(8))


def kprobe_catalog() -> ProbeCatalog:
    """Every provider, with fbt held to kprobes whatever else the kernel offers."""
    return ProbeCatalog([p for p in load_providers() if p.name != "fbt"] + [FbtProvider("kprobe")])


def _fdinfo(fd: int) -> dict[str, str]:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


# -- kprobes ---------------------------------------------------------------------------------

@pytest.mark.xfail(not KPROBES.available, strict=True, raises=DEnvironmentError,
                   reason=f"not possible on this kernel: {KPROBES.detail}")
def test_kprobe_and_kretprobe_count_reads_exactly(workloads):
    # the dynamic loader reads ELF headers (832 bytes) before main: sizes <= 128 are ours;
    # a return is counted for the calls counted at entry (the -c gate's own read returns 1)
    src = ("fbt::vfs_read:entry /pid == $target && arg2 <= 128/ "
           "{ @calls = count(); @asked = sum(arg2); self->asked = arg2; }\n"
           "fbt::vfs_read:return /self->asked/ "
           "{ @returns = count(); @got = sum(arg1); self->asked = 0; }")
    session = Session(SessionConfig(src, quiet=True,
                                    target_command=f"{workloads['sysload']} read {READS}"),
                      catalog=kprobe_catalog())
    result = run_session(session, duration=60)
    if result.error is not None:
        raise result.error
    values = {name: int(df.iloc[0, -1]) for name, df in result.aggregations.items()}
    assert values == {"@calls": READS, "@asked": READ_BYTES, "@returns": READS,
                      "@got": READ_BYTES}


def test_kprobe_program_loads_as_a_kprobe_program_and_its_attach_is_explained():
    """As far as this kernel lets the kprobe path go: the fbt binding's program is loaded
    as BPF_PROG_TYPE_KPROBE; attaching then fails (here) with the kernel's reason, and
    nothing is left behind."""
    before = bpf_state()
    _checked, program = compile_program(SessionConfig("fbt::vfs_read:entry { @ = sum(arg2); }"),
                                        kprobe_catalog())
    assert "struct pt_regs *ctx" in program.c_source and "ctx->dx" in program.c_source
    (fn,) = program.functions
    loaded = LoadedProgram(import_bcc(), program)
    try:
        loaded.load()
        assert _fdinfo(loaded.prog_fds[fn.name])["prog_type"] == str(bpf.BPF_PROG_TYPE_KPROBE)
        probe = loaded.probes[fn.name]
        assert isinstance(probe, KprobeProbe)
        if KPROBES.available:
            loaded.attach_all()
            assert probe.count == 1
        else:
            assert probe.mechanism is None
            with pytest.raises(DEnvironmentError) as info:
                loaded.attach_all()
            assert info.value.message == ("cannot attach kprobe vfs_read: not possible on "
                                          f"this kernel: {KPROBES.detail}")
    finally:
        loaded.close()
    assert loaded.maps == {} and loaded.attached == []
    assert settled_diff(before) == []


# -- uprobes, through the PMU and through tracefs --------------------------------------------

UPROBE_PROGRAM = """
pid$target:a.out:dtnb_work:entry { @calls = count(); @args = sum(arg0); }
pid$target:a.out:dtnb_work:return { @rets = sum(arg1); }
dtnb$target:::guarded { @guarded = count(); }
"""


@pytest.mark.parametrize("mechanism", ["pmu", "tracefs"])
def test_uprobes_count_exactly_through_each_mechanism(mechanism, workloads, monkeypatch):
    if features.probe_mechanism("uprobe") is None:
        pytest.fail("this kernel has no uprobes")
    if mechanism == "tracefs" and tracefs.probe_events_file("uprobe") is None:
        pytest.fail("this kernel has no tracefs uprobe_events")
    # hold the choice the feature layer makes: the kernel does all the rest
    monkeypatch.setattr(features, "probe_mechanism",
                        lambda kind: mechanism if kind == "uprobe" else None)
    before = bpf_state()
    n = 300
    session = Session(SessionConfig(UPROBE_PROGRAM, quiet=True,
                                    target_command=f"{workloads['userprobes']} {n}"))
    session.start()
    try:
        with open(tracefs.probe_events_file("uprobe")) as f:  # attached now: what was made?
            made = [ln for ln in f if f"{tracefs.GROUP}/dtnb_{os.getpid()}_" in ln]
        while session.poll(100):
            pass
    finally:
        session.stop()
    values = {name: int(s.values[0]) for name, s in session.snapshot().items()}
    # dtnb_work(i) returns 2i+1; guarded fires only while its semaphore is counted up
    assert values == {"calls": n, "args": n * (n - 1) // 2, "rets": n * n, "guarded": n}
    if mechanism == "tracefs":
        assert len(made) == 3, made  # entry, return, the USDT probe
        assert sum(ln.startswith("r:") for ln in made) == 1
        assert sum("(0x" in ln for ln in made) == 1  # the semaphore's offset
    else:
        assert made == []  # the PMU makes no tracefs event
    assert settled_diff(before) == []


# -- typed maps --------------------------------------------------------------------------------

def _spec(name: str, map_type: int, key_size: int, value_size: int, entries: int) -> MapSpec:
    return MapSpec(name, map_type, key_size, value_size, entries, 0, "", "")


def test_typed_maps_read_and_write_through_the_kernel():
    before = bpf_state()
    maps = []
    try:
        arr = create_map(_spec("dtnb_t_arr", bpf.BPF_MAP_TYPE_ARRAY, 4, 8, 4),
                         ctypes.c_uint32, ctypes.c_uint64)
        h = create_map(_spec("dtnb_t_hash", bpf.BPF_MAP_TYPE_HASH, 4, 8, 16),
                       ctypes.c_uint32, ctypes.c_uint64)
        pa = create_map(_spec("dtnb_t_pcpua", bpf.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 2),
                        ctypes.c_uint32, ctypes.c_uint64)
        ph = create_map(_spec("dtnb_t_pcpuh", bpf.BPF_MAP_TYPE_PERCPU_HASH, 8, 8, 5000),
                        ctypes.c_uint64, ctypes.c_uint64)
        maps = [arr, h, pa, ph]
        assert [type(m) for m in maps] == [ArrayMap, HashMap, PerCpuArrayMap, PerCpuHashMap]

        arr[2] = ctypes.c_uint64(7)
        assert arr.get(2).value == 7 and arr.get(1).value == 0
        h[5] = ctypes.c_uint64(11)
        assert h.get(5).value == 11 and h.get(6) is None
        assert h.delete(5) and not h.delete(5)

        ncpu = pa.ncpu
        pa.write(1, np.arange(ncpu, dtype="<u8") + 3)
        assert pa.values(1) == [3 + i for i in range(ncpu)]

        # more keys than one batch returns: read back in full, per CPU
        n = 4000
        for k in range(n):
            ph.write(k, np.full(ncpu, k, dtype="<u8"))
        keys, vals = ph.read_all(np.dtype("<u8"), np.dtype("<u8"))
        assert sorted(keys.tolist()) == list(range(n))
        assert vals.shape == (n, ncpu) and (vals == keys[:, None]).all()
        assert ph.delete(np.array([17], dtype="<u8"))
        assert len(ph.read_all(np.dtype("<u8"), np.dtype("<u8"))[0]) == n - 1
    finally:
        for m in maps:
            m.close()
    assert settled_diff(before) == []
