"""The program cache (runtime/program_cache.py): a program compiled before skips parse,
check and codegen, and counts exactly what a fresh compile counts; every input that decides
the compile (text, options, -q, macro arguments, macro variables' values, the kernel, the
providers, the project's code) makes a rebuild when it changes.
"""

from __future__ import annotations

import pickle

import pytest

from dtrace_nb.result.result import run_session
from dtrace_nb.runtime import compiler, program_cache
from dtrace_nb.session import Session, SessionConfig

pytestmark = pytest.mark.kernel

# the workload is a child of this process: its ppid is $pid here, in every run of this file
COUNT = "syscall::getppid:entry /ppid == $pid/ { @calls = count(); }"


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """A cache directory of this test's own (objects and programs), nothing in memory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("DTRACE_NB_PROGRAM_CACHE", raising=False)
    compiler.clear_memory_cache()
    yield tmp_path / "dtrace-nb" / "programs"
    compiler.clear_memory_cache()


@pytest.fixture
def run(workloads):
    def run(source: str, n: int = 1500, **cfg) -> tuple[Session, str]:
        """A session of `source` over `sysload getppid n`: the session, its output."""
        cfg.setdefault("quiet", True)
        s = Session(SessionConfig(source, target_command=f"{workloads['sysload']} getppid {n}",
                                  **cfg))
        result = run_session(s, duration=60)
        assert result.error is None
        return s, "".join(s.output)

    return run


def test_a_cached_program_skips_the_compile_and_counts_exactly_as_a_fresh_one(
        run, cache, monkeypatch):
    monkeypatch.setenv("DTRACE_NB_PROGRAM_CACHE", "off")
    fresh, fresh_text = run(COUNT)
    assert not fresh.program_from_cache and not cache.exists()
    monkeypatch.delenv("DTRACE_NB_PROGRAM_CACHE")
    first, first_text = run(COUNT)
    assert not first.program_from_cache and len(list(cache.iterdir())) == 1
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    again, again_text = run(COUNT)
    assert again.program_from_cache and again.compiled_from_cache
    assert fresh_text.split() == first_text.split() == again_text.split() == ["1500"]
    assert again.probes_enabled == fresh.probes_enabled == 1


def _changes(monkeypatch, tmp_path):
    """Each input of the key, changed; (name, the config's keyword arguments, a step that
    changes what is outside the config)."""
    def kernel():
        real = program_cache.kernel_identity()
        monkeypatch.setattr(program_cache, "kernel_identity", lambda: real + "\nanother boot")

    def providers():
        real = program_cache.providers_identity()
        monkeypatch.setattr(program_cache, "providers_identity",
                            lambda: real + "\nextra=some.module:Provider")

    def code():
        # one more source file in the project, as a new process would see it
        extra = tmp_path / "code"
        extra.mkdir()
        (extra / "edited.py").write_text("X = 1\n")
        dirs = program_cache._package_dirs() + [str(extra)]
        monkeypatch.setattr(program_cache, "_package_dirs", lambda: dirs)

    return [
        ("text", {"source": COUNT.replace("@calls", "@n")}, None),
        ("an option", {"options": {"aggsortrev": None}}, None),
        ("-q", {"quiet": False}, None),
        ("a macro argument", {"macro_args": ["7"]}, None),
        ("the kernel", {}, kernel),
        ("the providers", {}, providers),
        ("the project's code", {}, code),
    ]


@pytest.mark.parametrize("which", ["text", "an option", "-q", "a macro argument",
                                   "the kernel", "the providers", "the project's code"])
def test_each_input_of_the_key_makes_a_rebuild(run, cache, monkeypatch, tmp_path, which):
    _, base_text = run(COUNT, n=300)
    assert run(COUNT, n=300)[0].program_from_cache
    name, kwargs, step = next(c for c in _changes(monkeypatch, tmp_path) if c[0] == which)
    if step is not None:
        step()
    source = kwargs.pop("source", COUNT)
    changed, text = run(source, n=300, **kwargs)
    assert not changed.program_from_cache, f"{name} changed, yet the cached program was used"
    assert text.split()[-1] == base_text.split()[-1] == "300"
    # and the rebuilt program is kept under its own key
    assert run(source, n=300, **kwargs)[0].program_from_cache


def test_a_macro_variable_with_another_value_rebuilds(run, cache):
    """$target is each run's own target process: a program naming it is compiled again for
    every new target (a cached one would count the previous target's calls: none)."""
    source = "syscall::getppid:entry /pid == $target/ { @calls = count(); }"
    for n in (200, 300):
        s, text = run(source, n=n)
        assert not s.program_from_cache and text.split() == [str(n)]
    entries = list(cache.iterdir())
    assert len(entries) == 1
    with open(entries[0], "rb") as f:
        assert set(pickle.load(f)["macros"]) == {"target"}


def test_a_damaged_entry_is_compiled_again(run, cache):
    run(COUNT, n=100)
    (entry,) = cache.iterdir()
    entry.write_bytes(b"not a pickle")
    s, text = run(COUNT, n=100)
    assert not s.program_from_cache and text.split() == ["100"]
    assert run(COUNT, n=100)[0].program_from_cache


def test_user_space_probes_are_not_kept(run, cache):
    """A uprobe's binding depends on an executable's contents, which the key does not name."""
    s, text = run("pid$target::main:entry { @calls = count(); }", n=10)
    assert text.split() == ["1"] and not s.program_from_cache
    assert not cache.exists() or not list(cache.iterdir())
