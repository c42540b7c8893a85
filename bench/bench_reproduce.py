"""Wall time of ``thrifty reproduce`` (issue: speed, benchmark c), against one plain run.

Runs ``thrifty reproduce --scale SCALE --workers W`` into a fresh directory as a
subprocess, as a user would, then prints its wall time, the number of runs, the summed
run time of its records (what the workers spent training) and the parallel efficiency
``summed / (workers · wall)``. As a baseline measured in the same process it first times
one plain-backprop MNIST run at N = 100 (``thrifty train --hidden 100``, compiling
afresh), and prints the reproduction's wall time in units of that run. Data must be at
hand or fetchable.

The reproduction starts with an empty cache of compiled programs (a new directory in
``THRIFTY_COMPILATION_CACHE``), as on a machine that never ran thrifty. With
``--warm`` it then runs again into another new directory with the cache the first run
filled, prints that wall time too, and compares the two runs' records: status,
samples, accuracies, curves and energies must be identical.

Usage::

    python bench/bench_reproduce.py                # quick scale, 2 workers
    python bench/bench_reproduce.py --workers 1
    python bench/bench_reproduce.py --warm         # and again with the filled cache
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIMING = ("wall_time_s", "samples_per_s")
"""Fields of a record that measure time, which two runs of the same config do not share."""


def timed(command: list[str], cache: str) -> float:
    """Wall time (s) of ``command`` with the compilation cache ``cache`` (a directory
    or ``off``); raises when it fails."""
    env = dict(os.environ, THRIFTY_COMPILATION_CACHE=cache)
    t0 = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    return time.perf_counter() - t0


def differing_records(a: Path, b: Path) -> tuple[int, list[str]]:
    """Number of records in ``a/records`` and the names of those that ``b/records`` lacks
    or holds otherwise (timing fields aside)."""
    names = sorted(p.name for p in (a / "records").glob("*.json"))
    differ = []
    for name in names:
        first = json.loads((a / "records" / name).read_text())
        other = b / "records" / name
        second = json.loads(other.read_text()) if other.exists() else None
        if second is None or any(first.get(k) != second.get(k) for k in first if k not in TIMING):
            differ.append(name)
    return len(names), differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="quick", choices=("quick", "full"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=None, help="output directory (default: a new one)")
    parser.add_argument(
        "--warm", action="store_true", help="run again with the cache of compiled programs"
    )
    args = parser.parse_args()

    from thrifty import experiments

    python = sys.executable
    baseline = timed([python, "-m", "thrifty", "train", "--hidden", "100"], "off")
    out = Path(args.out or tempfile.mkdtemp(prefix="thrifty-bench-reproduce-"))
    cache = tempfile.mkdtemp(prefix="thrifty-bench-compilation-cache-")
    command = [python, "-m", "thrifty", "reproduce", "--scale", args.scale]
    command += ["--workers", str(args.workers)]
    wall = timed([*command, "--out", str(out)], cache)
    df = experiments.load(out)
    summed = float(df["wall_time_s"].sum())
    print(f"# thrifty reproduce --scale {args.scale} --workers {args.workers}: {out}")
    print(f"baseline (thrifty train --hidden 100): {baseline:8.1f} s")
    print(f"reproduce wall time:                   {wall:8.1f} s = {wall / 60:.1f} min")
    print(f"  in baseline runs:                    {wall / baseline:8.1f}")
    print(f"runs stored:                           {len(df):8d}")
    print(f"summed run time:                       {summed:8.1f} s = {summed / 60:.1f} min")
    print(f"parallel efficiency:                   {summed / (args.workers * wall):8.2f}")
    if args.warm:
        again = Path(tempfile.mkdtemp(prefix="thrifty-bench-reproduce-warm-"))
        warm = timed([*command, "--out", str(again)], cache)
        resummed = float(experiments.load(again)["wall_time_s"].sum())
        n, differ = differing_records(out, again)
        print(f"# again, with the cache of compiled programs the first run filled: {again}")
        print(f"reproduce wall time:                   {warm:8.1f} s = {warm / 60:.1f} min")
        print(f"  of the first run's:                  {warm / wall:8.2f}")
        print(f"summed run time:                       {resummed:8.1f} s = {resummed / 60:.1f} min")
        print(f"records identical to the first run's:  {n - len(differ):8d} of {n}")
        for name in differ:
            print(f"  differs: {name}")


if __name__ == "__main__":
    main()
