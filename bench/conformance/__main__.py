"""`python -m bench.conformance --suite DIR`: dtrace-utils' unittest suite through dtrace-nb.

    python -m bench.conformance --suite DTRACE_UTILS_CHECKOUT [--dt .venv/bin/dtrace-nb]
        [--out out/conformance] [--only aggs,printf] [--tests test/unittest/x/tst.y.d,...]
        [--timeout 41] [--resume]

DIR is a checkout (or `git archive` of test, include, uts and runtest.sh) of the public
oracle/dtrace-utils repository, branch devel. Results: OUT/summary.md, OUT/results.json (a
row per test), OUT/outputs/ (what each test printed). A measuring instrument, like the rest
of bench/: the suite is never copied into the project and CI does not run it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

from bench.conformance import execute
from bench.conformance.capabilities import Capabilities
from bench.conformance.judge import judge
from bench.conformance.report import summary, totals
from bench.conformance.suite import discover
from bench.conformance.triggers import Triggers

ROOT = Path(__file__).resolve().parents[2]
ALARMS = ("Traceback (most recent call last)", "internal error")


def _loaded_programs() -> set[str]:
    done = subprocess.run(["bpftool", "prog", "list", "-j"], capture_output=True, text=True)
    try:
        return {str(p["id"]) for p in json.loads(done.stdout or "[]")}
    except ValueError:
        return set()


def _accepts_cpp_flags(dt: str, root: Path) -> bool:
    done = subprocess.run([dt, *execute.CPP_FLAGS, "-e", "-n", "BEGIN { exit(0); }"],
                          cwd=root, capture_output=True, text=True, timeout=60)
    return done.returncode == 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.conformance", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", required=True, type=Path)
    ap.add_argument("--dt", default=str(ROOT / ".venv" / "bin" / "dtrace-nb"))
    ap.add_argument("--out", default=ROOT / "out" / "conformance", type=Path)
    ap.add_argument("--only", help="categories (folders of test/unittest), comma-separated")
    ap.add_argument("--tests", help="test paths relative to the suite, comma-separated")
    ap.add_argument("--timeout", type=int, default=41, help="seconds (runtest.sh: 41)")
    ap.add_argument("--resume", action="store_true", help="keep the rows of an earlier run")
    args = ap.parse_args(argv)

    root = args.suite.resolve()
    tests = discover(root, args.only.split(",") if args.only else None,
                     args.tests.split(",") if args.tests else None)
    outputs = args.out / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.json"
    rows: dict[str, dict] = {}
    if args.resume and results_file.exists():
        rows = {r["path"]: r for r in json.loads(results_file.read_text())}
    capabilities, triggers = Capabilities(), Triggers(root)
    cpp_flags = execute.CPP_FLAGS if _accepts_cpp_flags(args.dt, root) else []
    started = datetime.datetime.now(datetime.timezone.utc)
    before = _loaded_programs()
    suspects: dict[str, str] = {}
    for i, test in enumerate(tests, 1):
        key = str(test.path)
        if key in rows:
            continue
        row = {"path": key, "category": test.category, "kind": test.kind, "status": None,
               "reason": "", "seconds": 0.0, "alarms": []}
        alarms = row["alarms"]
        plan, why = test.expectation()
        missing = capabilities.missing(test)
        if plan == "skip":
            row.update(verdict="SKIP", reason=why)
        elif missing:
            row.update(verdict="SKIP-HERE", reason=missing)
        else:
            timeout = max(args.timeout, int(test.option("timeout") or 0))
            try:
                outcome = execute.run(test, args.dt, triggers, timeout, cpp_flags)
            except execute.NotRunnable as e:
                row.update(verdict="SKIP-HERE", reason=str(e))
            else:
                v = judge(test, outcome, plan == "xfail")
                lacking = (capabilities.refused_for_lack(outcome.stderr)
                           if v.verdict != "PASS" or test.kind == "err" else None)
                if lacking:
                    v.verdict, v.reason = "SKIP-HERE", lacking
                row.update(verdict=v.verdict, reason=v.reason, diff=v.diff,
                           status=outcome.status, seconds=round(outcome.seconds, 2),
                           command=" ".join(outcome.argv), tag_found=v.tag_found)
                stem = key.replace("/", "_")
                (outputs / f"{stem}.out").write_text(outcome.stdout)
                (outputs / f"{stem}.err").write_text(outcome.stderr)
                alarms += [a for a in ALARMS if a in outcome.stderr]
                if outcome.status == execute.TIMED_OUT:
                    alarms.append(f"timed out after {timeout} s")
                # Another tracer's programs may come and go meanwhile: a program is only
                # called left behind if it is still loaded when the whole run ends.
                for prog in _loaded_programs() - before - suspects.keys():
                    suspects[prog] = key
        rows[key] = row
        print(f"[{i}/{len(tests)}] {row['verdict']:9} {key} {row['reason'][:80]}", flush=True)
        results_file.write_text(json.dumps(list(rows.values()), indent=1))

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    header = [f"# dtrace-utils unittest suite through {args.dt}", "",
              f"Run of {started:%Y-%m-%d %H:%M} UTC at dtrace-nb commit {commit or '?'}; "
              f"suite {root}; {capabilities.describe()}; cpp flags "
              f"{'passed' if cpp_flags else 'left out (the command refused them)'}; "
              f"timeout {args.timeout} s."]
    still = _loaded_programs()
    for prog, key in suspects.items():
        if prog in still:
            rows[key]["alarms"].append(f"BPF program {prog} left loaded")
    results_file.write_text(json.dumps(list(rows.values()), indent=1))
    alarms = [f"{r['path']}: {a}" for r in rows.values() for a in r.get("alarms", [])]
    text = summary(list(rows.values()), header, alarms)
    (args.out / "summary.md").write_text(text)
    print(text)
    t = totals(list(rows.values()))
    return 0 if t["ran"] else 1


if __name__ == "__main__":
    sys.exit(main())
