"""Where a training step's time goes: JAX's profiler over one compiled chunk.

Builds the compiled chunk of :mod:`thrifty.train` for one configuration (as
``bench_caching.py`` does), runs two chunks to warm up and to move past the first
samples, then traces a third and prints the operations that took the most time,
per sample: each XLA operation's own time (its time minus that of operations
nested in it), with its output shape and the JAX operation it comes from; the first
line, the executor's wait for completion, is the time of a whole sample. Times under
the profiler are longer than without it, most for small operations.

Usage::

    PYTHONPATH=src python bench/profile_step.py --n 1000 --synapses caching:threshold=0.001
    PYTHONPATH=src python bench/profile_step.py --n 10000 --rules subnet:units=100 --data mnist
    PYTHONPATH=src python bench/profile_step.py --n 10000 --synapses caching:threshold=0.001 \
        --data normal-0.3
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import jax
import jax.numpy as jnp
import numpy as np

from bench_caching import Timer
from common import synthetic_inputs
from thrifty.config import RunConfig
from thrifty.train import load_dataset, run_chunk


def self_times(trace: dict) -> tuple[collections.Counter, collections.Counter]:
    """Own time (µs) and count of each named event in a Chrome-format trace."""
    threads: dict[tuple, list] = collections.defaultdict(list)
    for event in trace["traceEvents"]:
        if event.get("ph") == "X":
            threads[(event.get("pid"), event.get("tid"))].append(event)
    own: collections.Counter = collections.Counter()
    count: collections.Counter = collections.Counter()
    for events in threads.values():
        events.sort(key=lambda e: (e["ts"], -e.get("dur", 0)))
        stack: list[dict] = []
        for event in events:
            while stack and stack[-1]["ts"] + stack[-1].get("dur", 0) <= event["ts"]:
                stack.pop()
            if stack:
                own[stack[-1]["name"]] -= event.get("dur", 0)
            own[event["name"]] += event.get("dur", 0)
            count[event["name"]] += 1
            stack.append(event)
    return own, count


def main() -> None:
    """Trace one chunk and print the most expensive operations per sample."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="hidden units")
    parser.add_argument("--synapses", default="plain", help="synapse-model string")
    parser.add_argument("--rules", nargs="*", default=[], help="plasticity rules")
    parser.add_argument(
        "--data",
        choices=("synthetic", "normal-0.3", "mnist"),
        default="synthetic",
        help="inputs: N(0, 1) (as bench_caching.py), N(0, 0.3²) (as bench_speed.py and "
        "bench_caching_bounds.py), or MNIST",
    )
    parser.add_argument("--samples", type=int, default=1000, help="samples per chunk")
    parser.add_argument("--top", type=int, default=25, help="operations to print")
    args = parser.parse_args()
    data = None
    if args.data == "normal-0.3":
        x, y = synthetic_inputs()
        data = (np.asarray(x[:, :-1]), np.asarray(y))
    if args.data == "mnist":
        mnist = load_dataset(RunConfig(dataset="mnist"))
        data = (mnist.x_train[:5000], mnist.y_train[:5000])
    timer = Timer(args.synapses, args.n, tuple(args.rules), interval=args.samples, data=data)
    timer.chunk()
    hlo = (
        run_chunk.lower(
            timer.state,
            jnp.zeros(args.samples, jnp.int32),
            jnp.arange(args.samples, dtype=jnp.int32),
            timer.x,
            timer.y,
            timer.numbers,
            timer.k_steps,
            structure=timer.structure,
        )
        .compile()
        .as_text()
    )
    shapes = dict(re.findall(r"^\s+(?:ROOT )?%([\w.\-]+) = (\S+)", hlo, re.M))
    origin = dict(re.findall(r"^\s+(?:ROOT )?%([\w.\-]+) = .*?op_name=\"([^\"]*)\"", hlo, re.M))
    with tempfile.TemporaryDirectory() as directory:
        jax.profiler.start_trace(directory, create_perfetto_trace=True)
        timer.chunk()
        jax.profiler.stop_trace()
        path = next(Path(directory).rglob("*.trace.json.gz"))
        with gzip.open(path) as stream:
            trace = json.load(stream)
    own, count = self_times(trace)
    print(
        f"N={args.n} {args.synapses} {' '.join(args.rules)} ({args.data} inputs), "
        f"µs per sample under the profiler:"
    )
    n = args.samples
    ops = [(name, t) for name, t in own.most_common() if not name.startswith("$")]
    for name, total in ops[: args.top]:
        source = re.sub(r"^jit\(_chunk\)/while/body/closed_call/", "", origin.get(name, ""))
        print(
            f"{total / n:9.1f}  {count[name] / n:5.1f}×  {name:<34} "
            f"{shapes.get(name, ''):<22} {source[-70:]}"
        )


if __name__ == "__main__":
    main()
