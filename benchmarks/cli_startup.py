"""How fast `resonance --help` answers (the target is under 1 s). Prints a small table.

Run: .venv/bin/python benchmarks/cli_startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def time_command(cmd: list[str], runs: int) -> list[float]:
    """Wall time in seconds of `runs` executions of `cmd` (after one warm-up run)."""
    subprocess.run(cmd, capture_output=True, check=True)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    exe = shutil.which("resonance") or str(Path(sys.executable).parent / "resonance")
    rows = [("resonance --help", [exe, "--help"]), ("resonance catalog --help", [exe, "catalog", "--help"]),
            ("python -c pass (floor)", [sys.executable, "-c", "pass"])]
    print("| command | median s | max s | runs |\n|---|---|---|---|")
    for name, cmd in rows:
        t = time_command(cmd, args.runs)
        print(f"| {name} | {statistics.median(t):.3f} | {max(t):.3f} | {args.runs} |")


if __name__ == "__main__":
    main()
