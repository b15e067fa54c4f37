"""The run's tables: totals the README quotes, one row per category, skips and alarms."""

from __future__ import annotations

import collections


def _share(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.1f}%)" if d else "0/0"


def totals(rows: list[dict]) -> dict:
    ran = [r for r in rows if r["verdict"] in ("PASS", "FAIL", "XFAIL", "XPASS")]
    tst = [r for r in ran if r["kind"] == "tst"]
    err = [r for r in ran if r["kind"] == "err"]
    return {
        "tests": len(rows),
        "ran": len(ran),
        "pass": sum(r["verdict"] in ("PASS", "XPASS") for r in ran),
        "tst_run": len(tst),
        "tst_pass": sum(r["verdict"] in ("PASS", "XPASS") for r in tst),
        "err_run": len(err),
        "err_refused": sum(r["status"] not in (0, 124) for r in err),
        "err_strict": sum(r["verdict"] in ("PASS", "XPASS") for r in err),
        "xfail": sum(r["verdict"] == "XFAIL" for r in ran),
        "skip_here": sum(r["verdict"] == "SKIP-HERE" for r in rows),
        "skip_upstream": sum(r["verdict"] == "SKIP" for r in rows),
    }


def summary(rows: list[dict], header: list[str], alarms: list[str]) -> str:
    t = totals(rows)
    out = list(header)
    out += ["", f"**tst.\\***: {_share(t['tst_pass'], t['tst_run'])} pass exactly as runtest.sh "
                f"compares them. **err.\\***: {_share(t['err_strict'], t['err_run'])} refused "
                f"with the expected tag and message ({t['err_refused']} refused at all). "
                f"{t['ran']} tests ran, {t['xfail']} of them failing where the suite expects "
                f"it (XFAIL); {t['skip_here']} need what this kernel lacks; "
                f"{t['skip_upstream']} skipped by the suite itself.", "",
            "| category | ran | tst pass | err strict | err refused | xfail | skip here |",
            "|---|---|---|---|---|---|---|"]
    by_category = collections.defaultdict(list)
    for r in rows:
        by_category[r["category"]].append(r)
    for name in sorted(by_category):
        c = totals(by_category[name])
        out.append(f"| {name} | {c['ran']} | {c['tst_pass']}/{c['tst_run']} | "
                   f"{c['err_strict']}/{c['err_run']} | {c['err_refused']} | {c['xfail']} | "
                   f"{c['skip_here']} |")
    reasons = collections.Counter(r["reason"] for r in rows if r["verdict"] == "SKIP-HERE")
    if reasons:
        out += ["", "## Needs what this kernel lacks", ""]
        out += [f"- {n} x {why}" for why, n in reasons.most_common()]
    failures = collections.Counter(r["reason"].split(";")[0] for r in rows
                                   if r["verdict"] == "FAIL")
    if failures:
        out += ["", "## Failures by first reason", ""]
        out += [f"- {n} x {why}" for why, n in failures.most_common(20)]
    out += ["", "## Alarms (tracebacks, timeouts, BPF programs left loaded)", ""]
    out += [f"- {a}" for a in alarms] or ["- none"]
    return "\n".join(out) + "\n"
