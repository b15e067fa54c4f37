"""The kernel layer without a kernel: the perf_event_attr a kprobe or uprobe would be
opened with, the tracefs probe-event lines, PMU descriptions read from sysfs, and the
registry that picks one attach class per mechanism."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import pytest

from dtrace_nb.errors import DRuntimeError
from dtrace_nb.probes import (Attach, FentryAttach, KprobeAttach, PerfEventAttach,
                              RawTracepointAttach, TracepointAttach, TriggerAttach, UprobeAttach,
                              UprobeMultiAttach)
from dtrace_nb.runtime import attach
from dtrace_nb.runtime.attach.dynamic import ProbeSite
from dtrace_nb.runtime.kernel import bpf, perf, tracefs
from dtrace_nb.runtime.kernel.cpus import parse_cpu_list

KPROBE_PMU = perf.ProbePmu("kprobe", type=6, retprobe_bit=0)
UPROBE_PMU = perf.ProbePmu("uprobe", type=7, retprobe_bit=0, ref_ctr_shift=32)


def _fake_pmu(root, name: str, type_: str, formats: dict[str, str]) -> None:
    d = root / name
    (d / "format").mkdir(parents=True)
    (d / "type").write_text(type_ + "\n")
    for field, text in formats.items():
        (d / "format" / field).write_text(text + "\n")


def test_probe_pmu_reads_type_and_format_bits(tmp_path):
    _fake_pmu(tmp_path, "kprobe", "6", {"retprobe": "config:0"})
    _fake_pmu(tmp_path, "uprobe", "7", {"retprobe": "config:0", "ref_ctr_offset": "config:32-63"})
    assert perf.probe_pmu("kprobe", str(tmp_path)) == KPROBE_PMU
    assert perf.probe_pmu("uprobe", str(tmp_path)) == UPROBE_PMU
    assert perf.probe_pmu("nosuch", str(tmp_path)) is None


def test_a_pmu_without_a_retprobe_format_is_not_usable(tmp_path):
    _fake_pmu(tmp_path, "kprobe", "6", {})
    assert perf.probe_pmu("kprobe", str(tmp_path)) is None


def test_kprobe_attr_names_the_function_through_config1():
    name = ctypes.create_string_buffer(b"vfs_read")
    attr = perf.probe_attr(KPROBE_PMU, name, 0, ret=False)
    assert (attr.type, attr.size, attr.config) == (6, 72, 0)
    assert attr.config1 == ctypes.addressof(name)
    assert ctypes.string_at(attr.config1) == b"vfs_read"
    assert attr.config2 == 0  # kprobe_addr: 0, the function is named
    assert (attr.sample_period, attr.wakeup_events) == (1, 1)
    assert attr.flags == 0  # enabled by PERF_EVENT_IOC_ENABLE once the program is set


def test_kretprobe_attr_sets_the_retprobe_bit():
    pmu = perf.ProbePmu("kprobe", type=9, retprobe_bit=3)
    attr = perf.probe_attr(pmu, ctypes.create_string_buffer(b"vfs_read"), 0, ret=True)
    assert (attr.type, attr.config) == (9, 1 << 3)


def test_kprobe_probe_builds_the_attr_of_its_site():
    probe = attach.probe_for(KprobeAttach("vfs_read", ret=True))
    site = probe.site()
    assert site == ProbeSite("vfs_read", 0, True, -1, 0)
    attr, name = probe.pmu_attr(KPROBE_PMU, site)
    assert name.value == b"vfs_read" and attr.config1 == ctypes.addressof(name)
    assert attr.config == 1 and attr.type == KPROBE_PMU.type
    assert perf.probe_target_cpu(site.pid) == (-1, 0)  # every process: cpu 0, not -1


def test_uprobe_attr_carries_offset_and_semaphore():
    path = ctypes.create_string_buffer(b"/usr/bin/true")
    attr = perf.probe_attr(UPROBE_PMU, path, 0x1139, ret=False, ref_ctr_offset=0x4010)
    assert attr.config == 0x4010 << 32 and attr.config2 == 0x1139
    assert perf.probe_target_cpu(1234) == (1234, -1)
    with pytest.raises(OSError):
        perf.probe_attr(KPROBE_PMU, path, 0, ret=False, ref_ctr_offset=8)


def test_frequency_sampling_sets_the_freq_flag():
    attr = perf.event_attr(perf.PERF_TYPE_SOFTWARE, perf.PERF_COUNT_SW_CPU_CLOCK, sample_freq=97)
    assert attr.sample_period == 97 and attr.flags & perf.FLAG_FREQ
    attr = perf.event_attr(perf.PERF_TYPE_SOFTWARE, 0, sample_period=1000)
    assert attr.sample_period == 1000 and not attr.flags & perf.FLAG_FREQ


@pytest.mark.parametrize("kind, ret, target, offset, ref, line", [
    ("kprobe", False, "vfs_read", 0, 0, "p:dtnb/ev vfs_read"),
    ("kprobe", True, "vfs_read", 0, 0, "r:dtnb/ev vfs_read"),
    ("kprobe", False, "vfs_read", 4, 0, "p:dtnb/ev vfs_read+4"),
    ("uprobe", False, "/bin/x", 0x1139, 0, "p:dtnb/ev /bin/x:0x1139"),
    ("uprobe", True, "/bin/x", 0x1139, 0, "r:dtnb/ev /bin/x:0x1139"),
    ("uprobe", False, "/bin/x", 0x1139, 0x4010, "p:dtnb/ev /bin/x:0x1139(0x4010)"),
])
def test_tracefs_probe_event_lines(kind, ret, target, offset, ref, line):
    assert tracefs.probe_event_line(kind, "ev", ret, target, offset, ref) == line


ATTACH_KINDS = [
    (TracepointAttach("syscalls", "sys_enter_read"), attach.TracepointProbe,
     bpf.BPF_PROG_TYPE_TRACEPOINT),
    (RawTracepointAttach("sys_enter"), attach.RawTracepointProbe,
     bpf.BPF_PROG_TYPE_RAW_TRACEPOINT),
    (PerfEventAttach(1, 0, sample_freq=97), attach.PerfEventProbe, bpf.BPF_PROG_TYPE_PERF_EVENT),
    (UprobeAttach("/bin/true", 0x10), attach.UprobeProbe, bpf.BPF_PROG_TYPE_KPROBE),
    (UprobeMultiAttach("/bin/true", (0x10, 0x20), (1, 2)), attach.UprobeMultiProbe,
     bpf.BPF_PROG_TYPE_KPROBE),
    (KprobeAttach("vfs_read"), attach.KprobeProbe, bpf.BPF_PROG_TYPE_KPROBE),
    (TriggerAttach("BEGIN"), attach.TriggerProbe, bpf.BPF_PROG_TYPE_RAW_TRACEPOINT),
]


@pytest.mark.parametrize("spec, cls, prog_type", ATTACH_KINDS)
def test_registry_picks_one_class_per_mechanism(spec, cls, prog_type):
    assert attach.mechanism_for(spec) is cls
    assert attach.load_attributes(spec).prog_type == prog_type
    assert type(attach.probe_for(spec)) is cls


def test_every_attach_kind_has_a_class():
    kinds = {m.attaches for m in attach.MECHANISMS}
    assert kinds == {TracepointAttach, RawTracepointAttach, PerfEventAttach, UprobeAttach,
                     UprobeMultiAttach, KprobeAttach, FentryAttach, TriggerAttach}


def test_a_subclass_of_a_kind_attaches_as_its_kind():
    @dataclass(frozen=True)
    class NamedTracepoint(TracepointAttach):
        label: str = ""

    assert attach.mechanism_for(NamedTracepoint("sched", "sched_switch")) is attach.TracepointProbe


def test_an_unknown_mechanism_is_an_error():
    @dataclass(frozen=True)
    class Teleport(Attach):
        mechanism = "teleport"

    with pytest.raises(DRuntimeError, match="no way to attach mechanism 'teleport'"):
        attach.mechanism_for(Teleport())


def test_a_dynamic_probe_refuses_an_unknown_mechanism():
    with pytest.raises(ValueError):
        attach.KprobeProbe(KprobeAttach("vfs_read"), mechanism="magic")


def test_cpu_lists():
    assert parse_cpu_list("0-3,5,8-9\n") == [0, 1, 2, 3, 5, 8, 9]
    assert parse_cpu_list("0") == [0]
