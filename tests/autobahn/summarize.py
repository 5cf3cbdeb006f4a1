"""Summarise an Autobahn|Testsuite fuzzingclient report; exit 1 if any case FAILED.

``python tests/autobahn/summarize.py REPORT_DIR``: reads ``REPORT_DIR/index.json`` and each
case's own report beside it, prints the counts by behaviour (OK, NON-STRICT, INFORMATIONAL,
UNIMPLEMENTED, FAILED) and by closing behaviour, then every case that did not pass with its
description and what the server did.  A case fails if its ``behavior`` or its
``behaviorClose`` is ``FAILED``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

BEHAVIOURS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split("."))


def load(report_dir: Path) -> dict[str, dict[str, Any]]:
    index = json.loads((report_dir / "index.json").read_text())
    if len(index) != 1:
        raise SystemExit(f"expected one agent in {report_dir / 'index.json'}, got {list(index)}")
    (cases,) = index.values()
    return dict(cases)


def detail(report_dir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    path = report_dir / entry.get("reportfile", "")
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise SystemExit(f"usage: {argv[0]} REPORT_DIR")
    report_dir = Path(argv[1])
    cases = load(report_dir)
    behaviour = Counter(entry["behavior"] for entry in cases.values())
    closing = Counter(entry["behaviorClose"] for entry in cases.values())
    duration_ms = sum(entry.get("duration", 0) for entry in cases.values())
    print(f"Autobahn|Testsuite: {len(cases)} cases, {duration_ms / 1000:.1f} s in cases")
    for title, counts in (("behavior", behaviour), ("behaviorClose", closing)):
        others = sorted(set(counts) - set(BEHAVIOURS))
        parts = [f"{name} {counts[name]}" for name in (*BEHAVIOURS, *others)]
        print(f"  {title:14s} " + ", ".join(parts))
    failed = []
    notable = []
    for case_id in sorted(cases, key=case_key):
        entry = cases[case_id]
        if "FAILED" in (entry["behavior"], entry["behaviorClose"]):
            failed.append(case_id)
        elif entry["behavior"] not in ("OK", "INFORMATIONAL") or entry["behaviorClose"] not in (
            "OK", "INFORMATIONAL"
        ):
            notable.append(case_id)
    for title, ids in (("FAILED", failed), ("NON-STRICT / UNIMPLEMENTED", notable)):
        if not ids:
            continue
        print(f"\n{title}:")
        for case_id in ids:
            entry = cases[case_id]
            info = detail(report_dir, entry)
            description = " ".join(str(info.get("description", "")).split())
            print(f"  {case_id}: behavior={entry['behavior']} behaviorClose="
                  f"{entry['behaviorClose']} remoteCloseCode={entry.get('remoteCloseCode')}")
            if description:
                print(f"      case:   {description[:300]}")
            for key in ("result", "resultClose"):
                if info.get(key):
                    print(f"      {key + ':':12s}{' '.join(str(info[key]).split())[:300]}")
    print(f"\n{'FAILED' if failed else 'PASSED'}: {len(failed)} failed of {len(cases)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
