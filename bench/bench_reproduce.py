"""Wall time of ``thrifty reproduce`` (issue: speed, benchmark c), against one plain run.

Runs ``thrifty reproduce --scale SCALE --workers W`` into a fresh directory as a
subprocess, as a user would, then prints its wall time, the number of runs, the summed
run time of its records (what the workers spent training) and the parallel efficiency
``summed / (workers · wall)``. As a baseline measured in the same process it first times
one plain-backprop MNIST run at N = 100 (``thrifty train --hidden 100``), and prints the
reproduction's wall time in units of that run. Data must be at hand or fetchable.

Usage::

    python bench/bench_reproduce.py                # quick scale, 2 workers
    python bench/bench_reproduce.py --workers 1
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(command: list[str]) -> float:
    """Wall time (s) of ``command``; raises when it fails."""
    t0 = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="quick", choices=("quick", "full"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=None, help="output directory (default: a new one)")
    args = parser.parse_args()

    from thrifty import experiments

    python = sys.executable
    baseline = timed([python, "-m", "thrifty", "train", "--hidden", "100"])
    out = Path(args.out or tempfile.mkdtemp(prefix="thrifty-bench-reproduce-"))
    command = [python, "-m", "thrifty", "reproduce", "--scale", args.scale]
    command += ["--workers", str(args.workers), "--out", str(out)]
    wall = timed(command)
    df = experiments.load(out)
    summed = float(df["wall_time_s"].sum())
    print(f"# thrifty reproduce --scale {args.scale} --workers {args.workers}: {out}")
    print(f"baseline (thrifty train --hidden 100): {baseline:8.1f} s")
    print(f"reproduce wall time:                   {wall:8.1f} s = {wall / 60:.1f} min")
    print(f"  in baseline runs:                    {wall / baseline:8.1f}")
    print(f"runs stored:                           {len(df):8d}")
    print(f"summed run time:                       {summed:8.1f} s = {summed / 60:.1f} min")
    print(f"parallel efficiency:                   {summed / (args.workers * wall):8.2f}")


if __name__ == "__main__":
    main()
