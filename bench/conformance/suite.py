"""What one test of a dtrace-utils checkout asks for, read the way its runtest.sh reads it.

A test is a `.d` file under test/unittest whose name starts with `tst.`, `err.` or `drp.`.
Its options are `@@NAME: value` comments in the file, or in a `test.options` file in its
folder or any folder above it (the nearest file that has the option wins, as runtest.sh's
exist_options/extract_options walk up). Expected output: `BASE.$(uname -m).r`, else `BASE.r`;
`BASE.r.p` post-processes the output before the comparison.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path

ARCH = os.uname().machine
KINDS = ("tst.", "err.", "drp.")


@dataclasses.dataclass
class Test:
    path: Path              # relative to the suite root, e.g. test/unittest/aggs/tst.avg.d
    root: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def base(self) -> Path:
        return self.root / self.path.with_suffix("")

    @property
    def category(self) -> str:
        parts = self.path.parts
        return parts[2] if len(parts) > 3 else "."

    @property
    def kind(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def expected_exit(self) -> int:
        return 1 if self.kind == "err" else 0

    @property
    def expected_tag(self) -> str | None:
        # err.D_XXX.rest.d and drp.DTRACEDROP_XXX.rest.d name the tag dtrace must print.
        if self.kind in ("err", "drp") and re.match(r"^(err\.D_|drp\.)", self.name):
            return self.name.split(".")[1]
        return None

    @property
    def expected_file(self) -> Path | None:
        for candidate in (Path(f"{self.base}.{ARCH}.r"), Path(f"{self.base}.r")):
            if candidate.exists():
                return candidate
        return None

    @property
    def postprocessor(self) -> Path | None:
        p = Path(f"{self.base}.r.p")
        return p if p.exists() and os.access(p, os.X_OK) else None

    @property
    def text(self) -> str:
        return (self.root / self.path).read_text(errors="replace")

    def option(self, name: str) -> str | None:
        """The value of @@NAME (an empty string for a bare @@NAME), or None when absent.

        `@@NAME-other` is another option; the nearest file that has NAME gives the value."""
        pattern = re.compile(r"@@" + re.escape(name) + r"(?:\s*:\s*(.*?)|\s.*?|)\s*(?:\*/)?\s*$")
        for source in self._option_sources():
            for line in source.read_text(errors="replace").splitlines():
                m = pattern.search(line)
                if m:
                    return (m.group(1) or "").strip()
        return None

    def _option_sources(self):
        yield self.root / self.path
        folder = (self.root / self.path).parent
        top = self.root / "test"
        while True:
            options = folder / f"test.{ARCH}.options"
            if not options.exists():
                options = folder / "test.options"
            if options.exists():
                yield options
            if folder == top or folder == folder.parent:
                return
            folder = folder.parent

    def shebang(self) -> list[str] | None:
        """The interpreter line's argument (`#!dtrace -qs` -> ['-qs']), None if it has none."""
        first = self.text.split("\n", 1)[0]
        if not first.startswith("#!dtrace"):
            return None
        rest = first[len("#!dtrace"):].strip()
        return [rest] if rest else []

    def expectation(self, timeout: int = 10) -> tuple[str, str]:
        """('run' | 'xfail' | 'skip', why), from @@skip, @@xfail and the .x programs."""
        if self.option("skip") is not None:
            return "skip", self.option("skip") or "@@skip"
        level, why = 0, ""
        if self.option("xfail") is not None and self.option("no-xfail") is None:
            level, why = 1, self.option("xfail") or "@@xfail"
        for program in self._x_programs():
            if os.access(program, os.X_OK):
                try:
                    done = subprocess.run([str(program)], cwd=self.root, capture_output=True,
                                          text=True, timeout=timeout)
                    code, said = min(done.returncode, 2), done.stdout.strip()
                except (OSError, subprocess.TimeoutExpired) as e:
                    code, said = 2, f"{program.name} could not run: {e}"
            else:
                code, said = 1, ""
            if code > level:
                level, why = code, said or program.name
            if level == 2:
                break
        return ("run", "xfail", "skip")[level], why

    def _x_programs(self):
        """BASE.x, then test.x in each folder up to the suite's top (arch-specific ones first)."""
        base = self.base
        folder = base.parent
        while True:
            for candidate in (Path(f"{base}.{ARCH}.x"), Path(f"{base}.x")):
                if candidate.exists():
                    yield candidate
                    break
            if (folder / "Makecheck").exists() or folder == self.root or folder == folder.parent:
                return
            base = folder / "test"
            folder = folder.parent


def discover(root: Path, only: list[str] | None = None,
             paths: list[str] | None = None) -> list[Test]:
    """The suite's .d tests, sorted by path; `only` keeps some categories, `paths` some tests."""
    unit = root / "test" / "unittest"
    if not unit.is_dir():
        raise SystemExit(f"{root} has no test/unittest: not a dtrace-utils checkout")
    if paths:
        found = [Test(Path(p).relative_to(root) if Path(p).is_absolute() else Path(p), root)
                 for p in paths]
    else:
        found = [Test(p.relative_to(root), root) for p in unit.rglob("*.d")
                 if p.name.startswith(KINDS) and "/." not in str(p)]
    if only:
        found = [t for t in found if t.category in only]
    return sorted(found, key=lambda t: str(t.path))
