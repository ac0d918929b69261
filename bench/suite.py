"""The benchmark suite in one command: the settle call, whole bills (open loop), the clearing
consumer — each a separate process on the local servers, one after the other (they share the
2 cores, so never at once).

    python3 bench/suite.py                 # the full runs, as RESULTS.md records them
    python3 bench/suite.py --quick         # a smoke run: each part briefly; asserts it ran and produced numbers
    python3 bench/suite.py --record        # and append the whole-bill rows to bench/RESULTS.md

Prints one JSON object: the machine, the commit, and each part's report (its own command in it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

PARTS = {  # part -> (full arguments, quick arguments)
    "settle": (["settle_bench.py", "--visits", "30000", "--connections", "16", "--workers", "2", "--seconds", "15"],
               ["settle_bench.py", "--visits", "2000", "--connections", "8", "--workers", "1", "--seconds", "3"]),
    "bills": (["bill_bench.py", "--rates", "400,700,1000", "--seconds", "60"], ["bill_bench.py", "--quick"]),
    "clearing": (["clearing_bench.py", "--events", "100000"], ["clearing_bench.py", "--quick"]),
}
NUMBERS = {"settle": lambda r: r["settle"]["per_s"], "bills": lambda r: r["runs"][0]["bills_per_s"],
           "clearing": lambda r: r["clearing_events_per_s"]}


def machine() -> dict:
    memory = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), None)
    return {"cores": os.cpu_count(), "memory_mib": memory, "python": platform.python_version(),
            "kernel": platform.release()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--record", action="store_true", help="append the whole-bill rows to bench/RESULTS.md")
    ap.add_argument("--only", choices=sorted(PARTS), action="append", help="run only these parts")
    args = ap.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                            text=True).stdout.strip()
    report = {"command": " ".join(["python3", "bench/suite.py", *sys.argv[1:]]), "commit": commit,
              "machine": machine(), "parts": {}}
    failed = []
    for part in args.only or PARTS:
        if part == "bills" and shutil.which("go") is None:
            report["parts"][part] = {"skipped": "go is not installed: the load generator (bench/billgen) is built with it"}
            continue
        argv = list(PARTS[part][1 if args.quick else 0])
        if part == "bills" and args.record:
            argv.append("--record")
        out = subprocess.run([sys.executable, str(HERE / argv[0]), *argv[1:]], cwd=HERE.parent, capture_output=True,
                             text=True)
        try:
            result = json.loads(out.stdout)
            report["parts"][part] = {"per_s": NUMBERS[part](result), "report": result}
        except (ValueError, KeyError, IndexError):
            failed.append(part)
            report["parts"][part] = {"failed": out.stderr[-2000:]}
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
