"""The ``thrifty`` command line: thin wrappers that parse options into configs.

Commands
--------
train       train one network and print its energy
rules       list the plasticity rules and synapse models with their parameters
data        fetch and verify a data set
sweep       run a grid of configs from a TOML/JSON file into a results directory
reproduce   reproduce the paper's figures and write a report
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from thrifty.config import (
    ACTIVATIONS,
    DATASETS,
    DTYPES,
    INPUTS,
    LOSSES,
    PROTOCOLS,
    ConfigError,
    RunConfig,
)
from thrifty.figures.scales import FIGURES

# Options of `train` that map one-to-one onto RunConfig fields.
_TRAIN_FIELDS = {
    "dataset": "dataset",
    "protocol": "protocol",
    "hidden": "n_hidden",
    "lr": "lr",
    "sigma": "sigma",
    "seed": "seed",
    "synapses": "synapses",
    "activation": "activation",
    "loss": "loss",
    "inputs": "inputs",
    "budget_epochs": "budget_epochs",
    "check_interval": "check_interval",
    "criterion": "criterion",
    "dtype": "dtype",
    "n_train": "n_train",
}


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=_path,
        help="TOML file (JSON if it ends in .json) with a [run] table of config fields; "
        "options given as well override its fields",
    )
    p.add_argument("--dataset", choices=DATASETS, help="data set (default mnist)")
    p.add_argument(
        "--protocol", choices=PROTOCOLS, help="data and training protocol (default 'default')"
    )
    p.add_argument("--hidden", type=int, metavar="N", help="hidden units (default 100)")
    p.add_argument("--lr", type=float, help="learning rate η (default 0.01)")
    p.add_argument(
        "--sigma", type=float, help="std of initial weights (default 0.01; 0.03 reference)"
    )
    p.add_argument("--seed", type=int, help="seed of weights, sample order and masks (default 0)")
    p.add_argument(
        "--rule",
        action="append",
        metavar="SPEC",
        help="plasticity rule, repeatable, e.g. subnet:units=100 or top-k:per=layer,fraction=0.05 "
        "(see `thrifty rules`); replaces the rules of --config",
    )
    p.add_argument(
        "--synapses", metavar="SPEC", help="synapse model: plain (default) or caching:..."
    )
    p.add_argument(
        "--activation", choices=ACTIVATIONS, help="hidden activation (default leaky_relu)"
    )
    p.add_argument("--loss", choices=LOSSES, help="output loss (default mse)")
    p.add_argument("--inputs", choices=INPUTS, help="centred (default) or raw pixels")
    p.add_argument(
        "--budget-epochs",
        type=float,
        help="sample budget in epochs (default 5), rounded up to a whole number of "
        "check intervals: a run stops at a check",
    )
    p.add_argument(
        "--check-interval",
        type=int,
        help="samples between accuracy checks (default 1000; 2000 with --protocol reference)",
    )
    p.add_argument(
        "--criterion",
        type=float,
        help="accuracy that ends training (default 0.95 MNIST, 0.85 Fashion-MNIST, 0.9 synthetic)",
    )
    p.add_argument("--dtype", choices=DTYPES, help="float32 (default) or float64")
    p.add_argument(
        "--alpha",
        type=float,
        action="append",
        help="extra M_alpha meter, repeatable; replaces the alphas of --config",
    )
    p.add_argument("--n-train", type=int, help="use only the first N training images")
    p.add_argument(
        "--data-dir", help="directory with the IDX files (else $THRIFTY_DATA, the cache, ...)"
    )


def _config_from_args(args: argparse.Namespace) -> RunConfig:
    """The checked config of the options and ``--config`` file; errors name the option
    or the file that gave the bad value."""
    from thrifty.data import SYNTHETIC_N_TRAIN
    from thrifty.rules.registry import RuleError
    from thrifty.train import budget_samples, check_config

    values: dict[str, Any] = {}
    if args.config is not None:
        values.update(_run_table(args))
    from_file = set(values)
    for opt, field in _TRAIN_FIELDS.items():
        v = getattr(args, opt, None)
        if v is not None:
            values[field] = v
            from_file.discard(field)
    if args.rule:
        values["rules"] = tuple(args.rule)
        from_file.discard("rules")
    if args.alpha:
        values["alphas"] = tuple(args.alpha)
        from_file.discard("alphas")
    try:
        config = check_config(RunConfig.from_dict(values))
        if config.dataset == "synthetic":  # its size is known here, as MNIST's is
            budget_samples(config, min(config.n_train or SYNTHETIC_N_TRAIN, SYNTHETIC_N_TRAIN))
        return config
    except RuleError as exc:
        if args.config is not None and {"rules", "synapses"} & from_file:
            raise RuleError(f"--config {str(args.config)!r}: {exc}") from None
        raise
    except ConfigError as exc:
        # name where the bad value came from: the option, or the config file
        message = str(exc)
        options = {field: opt for opt, field in _TRAIN_FIELDS.items()}
        options.update(rules="rule", alphas="alpha")
        field = message.split(" ", 1)[0].rstrip(":")
        if field in options and field not in from_file:
            raise ConfigError(f"--{options[field].replace('_', '-')}: {message}") from None
        if args.config is not None:
            raise ConfigError(f"--config {str(args.config)!r}: {message}") from None
        raise


def _run_table(args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``thrifty train``'s ``--config`` file, read once per command."""
    if getattr(args, "run_table", None) is None:
        args.run_table = _read_run_table(args.config)
    return dict(args.run_table)


def _read_run_table(path: Path) -> dict[str, Any]:
    """The config fields of a ``--config`` file (TOML, or JSON by the suffix ``.json``):
    its ``[run]`` table or its top-level fields, checked as ``thrifty sweep`` checks a
    file of one run."""
    from thrifty.experiments.configfile import read, run_fields

    if path.is_dir():
        raise ConfigError(f"--config: {str(path)!r} is a directory, not a config file")
    try:
        data = read(path)
    except ConfigError as exc:
        # "--config 'PATH': what is wrong", without the path a second time
        named = repr(str(path))
        message = str(exc).replace(f" {named}", "", 1).replace(f"{named} ", "", 1)
        message = message.replace("table (a JSON object)", "[run] table (a JSON object)")
        raise ConfigError(f"--config {named}: {message}") from None
    sweep_keys = sorted({"grid", "seeds", "runs"} & set(data))
    if sweep_keys:
        raise ConfigError(
            f"--config: {str(path)!r} describes a sweep ({', '.join(sweep_keys)}); "
            "`thrifty train` runs one config: use `thrifty sweep` for it"
        )
    try:
        return run_fields(data, repr(str(path)))
    except ConfigError as exc:
        raise ConfigError(f"--config {exc}") from None


def _fmt_int(n: int | None) -> str:
    return "-" if n is None else f"{n:,}".replace(",", " ")


def summary(record: dict[str, Any]) -> str:
    """A short human-readable summary of a run record."""
    cfg = record["config"]
    lines = [
        f"run {record['key']}: {cfg['dataset']}, N={cfg['n_hidden']}, lr={cfg['lr']}, "
        f"seed={cfg['seed']}, rules={' + '.join(cfg['rules']) or 'backprop'}, "
        f"synapses={cfg['synapses']}",
        f"status      {record['status']}"
        + (
            f" (non-finite at sample {record['diverged_at']})"
            if record["diverged_at"] is not None
            else ""
        ),
        f"samples     {_fmt_int(record['samples'])}"
        + (" to criterion" if record["status"] == "converged" else ""),
    ]
    if record["accuracy"] is not None:
        lines.append(
            f"accuracy    {record['accuracy']:.4f} ({cfg['check_set']}), "
            f"test {record['test_accuracy']:.4f}"
        )
    from thrifty.synapses import synapse_structure

    # with synaptic caching the meters price consolidations, not the transient updates
    caching = synapse_structure(cfg["synapses"])[0] == "caching"
    m0_name = "M0 (consolidations)" if caching else "M0 (updates)"
    lines.append(f"{'energy':<12}{m0_name:>22}{'M1 (Σ|Δw|)':>16}")
    for layer in ("hidden", "output", "total"):
        e = record["energy"][layer]
        lines.append(f"  {layer:<10}{_fmt_int(e['m0']):>22}{e['m1']:>16.6g}")
    total = record["energy"]["total"]
    if total.get("m1_transient"):
        lines.append(f"  {'of which transient cost':<32}{total['m1_transient']:>16.6g}")
    if record.get("minimal_energy"):
        m = record["minimal_energy"]["total"]
        ineff = record["inefficiency"]
        lines.append(
            f"  {'minimal':<10}{_fmt_int(m['m0']):>22}{m['m1']:>16.6g}"
            f"   (inefficiency M0 {ineff['m0']:.3g}×, M1 {ineff['m1']:.3g}×)"
        )
    for alpha, value in (total.get("m_alpha") or {}).items():
        lines.append(f"  {f'M_alpha (alpha = {alpha})':<32}{value:>16.6g}")
    for layer, left in (record.get("synapse_summary") or {}).items():
        if isinstance(left, dict) and "remaining_m0" in left:
            lines.append(
                f"left in s    {layer}: {_fmt_int(left['remaining_m0'])} synapses, "
                f"Σ|s| = {left['remaining_m1']:.6g}"
            )
    lines.append(
        f"wall time   {record['wall_time_s']:.1f} s, {record['samples_per_s'] or 0:.0f} samples/s"
    )
    if record.get("data_source"):
        lines.append(f"data        {record['data_source']}")
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    """``thrifty train``: validate everything, load data, train, print the summary."""
    from thrifty import train

    config = _config_from_args(args)
    if args.out is not None:
        _check_output_file(args.out)
    quiet = args.json or args.quiet
    log = None if quiet else (lambda msg: print(msg, file=sys.stderr))
    dataset = train.load_dataset(config, data_dir=args.data_dir, log=log)

    def progress(samples: int, acc: float) -> None:
        if not quiet:
            print(f"  {samples:>8} samples  accuracy {acc:.4f}", file=sys.stderr, flush=True)

    record = train.run(config, dataset, progress=progress)
    # the record is written before anything is printed: a reader of the output that
    # goes away (`| head`) must not lose it
    shown = json.dumps(record, indent=2) if args.json else summary(record)
    if args.out is not None:
        try:
            _write_json(args.out, record)
        except OSError as exc:
            print(shown)
            if not args.json:  # the summary alone would lose the record
                print(json.dumps(record, indent=2))
            print(
                f"thrifty train: error: --out: cannot write {str(args.out)!r} "
                f"({exc.strerror or exc}); the record is printed above",
                file=sys.stderr,
            )
            return 2
    print(shown)
    return 0 if record["status"] != "diverged" else 3


def _write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON so that only a complete file can appear at ``path``
    (:func:`thrifty.data.atomic_write`); a symbolic link is written through, to the
    file it names."""
    from thrifty.data import atomic_write

    atomic_write(Path(os.path.realpath(path)), json.dumps(data, indent=2).encode())


def _check_output_file(path: Path) -> None:
    """Raise ConfigError unless a file can be written at ``path`` (checked before a run,
    so that a finished run is not lost to a bad ``--out``). A symbolic link counts as
    the file it names; what exists there must be a regular file, since the record
    replaces it whole."""
    real = Path(os.path.realpath(path))
    parent = path.parent if real == path.absolute() else real.parent  # "." for a bare name
    if real.is_symlink():  # a loop of links, which realpath leaves unresolved
        raise ConfigError(f"--out: {str(path)!r} is a loop of symbolic links")
    if real.is_dir():
        raise ConfigError(f"--out: {str(path)!r} is a directory; give a file name")
    if real.exists() and not real.is_file():
        raise ConfigError(
            f"--out: {str(path)!r} is not a regular file (a device, pipe or socket); "
            "give a file name, or use --json to print the record"
        )
    if not parent.exists():
        raise ConfigError(f"--out: the directory {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise ConfigError(f"--out: {str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out: the directory {str(parent)!r} cannot be written")


def _check_output_dir(path: Path) -> list[Path]:
    """Create the directory ``path`` (and its parents) if needed; ConfigError if that
    fails or it cannot be written (checked before any run).

    Returns the directories it created, deepest first (see :func:`_output_dir`).
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out: {str(path)!r} exists and is not a directory")
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out: cannot create the directory {str(path)!r}: {exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"--out: the directory {str(path)!r} cannot be written")
    return created


@contextlib.contextmanager
def _output_dir(path: Path) -> Iterator[None]:
    """Check and create the results directory ``path`` for the commands inside.

    When they fail (a data error, an interrupt), the directories created here are
    removed again if they are still empty, so a failed start leaves nothing behind;
    a directory holding anything, such as the records of finished runs, is kept.
    """
    created = _check_output_dir(path)
    try:
        yield
    except BaseException:
        for directory in created:
            try:
                directory.rmdir()  # only succeeds while empty
            except OSError:
                break
        raise


def cmd_rules(args: argparse.Namespace) -> int:
    """``thrifty rules``: the registry, with parameters."""
    from thrifty.rules import describe
    from thrifty.synapses import SYNAPSE_MODELS

    print("Plasticity rules (--rule NAME:key=value,...; repeat --rule to combine them):\n")
    print(describe())
    print("\nSynapse models (--synapses NAME:key=value,...):\n")
    print(describe(SYNAPSE_MODELS))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """``thrifty data``: fetch, verify and cache a data set."""
    from thrifty import data

    for name in args.dataset or ["mnist"]:
        raw = data.load_raw(name, data_dir=args.data_dir, log=lambda m: print(m, file=sys.stderr))
        print(
            f"{name}: {raw.train_images.shape[0]} training and "
            f"{raw.test_images.shape[0]} test images from {raw.source}"
        )
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """``thrifty sweep FILE --out DIR``: run a grid of configs, resuming where it stopped."""
    from thrifty.experiments import run_sweep
    from thrifty.experiments.store import ResultStore
    from thrifty.experiments.sweep import check_run
    from thrifty.rules.registry import RuleError

    configs = _sweep_configs(args)
    store = ResultStore(args.out)
    # runs with a finished record are neither checked again nor need their data
    pending = [(i, c) for i, c in enumerate(configs) if not store.is_final(c.key())]
    for i, c in pending:
        try:
            check_run(c)
        except (ConfigError, RuleError) as exc:
            where = f"config {i + 1} of {len(configs)}" + _differences(c, configs[0])
            raise type(exc)(f"{str(args.file)!r}, {where}: {exc}") from None
    if args.scheduler is None:
        _check_data([c for _, c in pending], args.data_dir)
    _warn_of_workers(args)
    with _output_dir(args.out):
        result = run_sweep(
            configs,
            args.out,
            workers=args.workers,
            scheduler=args.scheduler,
            data_dir=args.data_dir,
            batch=args.batch,
        )
    print(result)
    return 1 if result.failed else 0


def _sweep_configs(args: argparse.Namespace) -> list[RunConfig]:
    """The configs of ``thrifty sweep``'s file, read and expanded once per command."""
    from thrifty.experiments.configfile import configs_from_file

    if getattr(args, "configs", None) is None:
        args.configs = configs_from_file(args.file)
    return args.configs  # type: ignore[no-any-return]


def _check_data(pending: Sequence[RunConfig], data_dir: str | None) -> None:
    """Find and verify, once, the data sets of the runs ``pending`` (those not stored
    yet), which local workers will read from here: DataError before any run when one is
    missing or damaged (a sweep whose runs are all stored needs no data)."""
    from thrifty import data

    for name in sorted({c.dataset for c in pending if c.dataset != "synthetic"}):
        data.load_raw(name, data_dir=data_dir, log=lambda m: print(m, file=sys.stderr))


def _differences(config: RunConfig, first: RunConfig) -> str:
    """The fields in which ``config`` differs from ``first`` (the grid point that made
    it), as ``" (field=value, ...)"``; empty when none does."""
    a, b = config.to_dict(), first.to_dict()
    changed = [f"{k}={v!r}" for k, v in a.items() if v != b.get(k)]
    return f" ({', '.join(changed)})" if changed else ""


def _warn_of_workers(args: argparse.Namespace) -> None:
    """Warn of a ``--workers`` that does nothing (beside ``--scheduler``, whose cluster
    runs the runs) or that asks for more processes than this machine has cores."""
    # the cores this process may run on (a batch system's share, not the machine's)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if args.scheduler is not None and args.workers != 1:
        warnings.warn(
            f"--workers {args.workers} is ignored with --scheduler: the cluster's workers run "
            "the runs",
            stacklevel=2,
        )
    elif args.workers > cores:
        warnings.warn(
            f"--workers {args.workers} starts more processes than the {cores} "
            f"core{'s' * (cores > 1)} this process may use, which share them (each run "
            "also uses several threads)",
            stacklevel=2,
        )


def cmd_reproduce(args: argparse.Namespace) -> int:
    """``thrifty reproduce``: runs, figures and the report."""
    from thrifty import reproduce as reproduction

    _warn_of_workers(args)
    with _output_dir(args.out):
        report = reproduction.reproduce(
            args.scale,
            out=args.out,
            workers=args.workers,
            scheduler=args.scheduler,
            data_dir=args.data_dir,
            datasets=tuple(args.dataset or reproduction.DATASETS),
            figures=None if args.figures is None else tuple(args.figures),
            seeds=args.seeds,
            report_only=args.report_only,
        )
    print(f"report: {report}")
    return 0


def _path(text: str) -> Path:
    """A path option; an empty one (an unset shell variable) is an error, not ``.``."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must be a path, got an empty string")
    return Path(text)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _seed_count(text: str) -> int:
    """``--seeds``: an integer in [1, MAX_SEEDS]."""
    from thrifty.figures._common import MAX_SEEDS

    value = _positive_int(text)
    if value > MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"must be an integer in [1, {MAX_SEEDS}], got {text!r}")
    return value


def _figure_list(text: str) -> tuple[str, ...]:
    """``--figures``: names from :data:`thrifty.figures.FIGURES`, comma-separated."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in FIGURES]
    if unknown or not names:
        what = f"unknown figure(s) {', '.join(unknown)}" if unknown else "no figure named"
        raise argparse.ArgumentTypeError(f"{what}; allowed: {', '.join(FIGURES)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``thrifty`` command."""
    parser = argparse.ArgumentParser(
        prog="thrifty",
        description="Measure the energy that learning spends on synaptic plasticity.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one network and print its energy")
    _add_run_options(p)
    p.add_argument("--json", action="store_true", help="print the full record as JSON")
    p.add_argument("--out", type=_path, help="also write the record to this JSON file")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress lines and no note on stderr of where the data came from (the "
        "summary still names it)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("rules", help="list rules and synapse models")
    p.set_defaults(func=cmd_rules)

    p = sub.add_parser(
        "data",
        help="fetch and verify data sets",
        description="Fetch a data set into the cache (~/.cache/thrifty, or $THRIFTY_CACHE) "
        "and verify its checksums; one that is already there is only verified.",
    )
    p.add_argument(
        "--dataset",
        action="append",
        choices=("mnist", "fashion-mnist"),
        help="repeatable (default: mnist)",
    )
    p.add_argument("--data-dir", help="read the IDX files from this directory instead")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser(
        "sweep",
        help="run a grid of configs from a TOML/JSON file",
        description="Run every config a file describes (a [run] table, a [grid] of values, "
        "seeds; see the README) and store one record per run in --out. Runs whose record "
        "is already there are skipped, so running the command again resumes a sweep.",
    )
    p.add_argument("file", type=_path, help="TOML file (JSON if it ends in .json)")
    p.add_argument("--out", type=_path, required=True, help="results directory")
    p.add_argument(
        "--workers", type=_positive_int, default=1, help="local worker processes (default 1)"
    )
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://HOST:8786")
    p.add_argument(
        "--data-dir",
        help="directory with the IDX files, on the workers (else $THRIFTY_DATA, the cache, ...)",
    )
    p.add_argument(
        "--batch",
        type=_positive_int,
        help="runs that differ only in numbers per compiled batch (default: 1 on a CPU, "
        "32 on an accelerator)",
    )
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "reproduce",
        help="reproduce the paper's figures and write a report",
        description="Run the figures' sweeps, draw the figures and write report.md and "
        "report.html in --out. Runs already stored there are skipped, so running the "
        "command again resumes it.",
    )
    p.add_argument(
        "--scale",
        choices=("quick", "full"),
        default="quick",
        help="quick (default: small networks; about 11-14 min with --workers 2 on 2 cores) or "
        "full (the paper's sizes and seeds, for a cluster)",
    )
    p.add_argument(
        "--out",
        type=_path,
        default=Path("reproduction"),
        help="output directory (default ./reproduction)",
    )
    p.add_argument(
        "--workers", type=_positive_int, default=1, help="local worker processes (default 1)"
    )
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://HOST:8786")
    p.add_argument("--data-dir", help="directory with the IDX files")
    p.add_argument(
        "--dataset",
        action="append",
        choices=("mnist", "fashion-mnist"),
        help="repeatable (default: mnist and fashion-mnist); the first must be at hand, a "
        "later one whose data cannot be had is left out with a note",
    )
    p.add_argument(
        "--figures",
        type=_figure_list,
        action="extend",
        help="comma-separated subset of the figures, e.g. fig1b,fig3a; repeatable (default: "
        "all; an unknown name lists them)",
    )
    p.add_argument(
        "--seeds",
        type=_seed_count,
        help="seeds of every point, 0 to N-1, N at most 100 (default: the scale's, 1-3 at "
        "quick and 5 at full; 3 at quick: 459 runs instead of 204)",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing and load no data: draw the figures whose runs are all stored in "
        "--out and write the report, which names the figures with runs missing",
    )
    p.set_defaults(func=cmd_reproduce)
    return parser


_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})


def _needs_x64(args: argparse.Namespace) -> bool:
    """Whether the command runs a float64 config: JAX's 64-bit mode must then be on
    before anything is computed. Reads a ``--config`` or sweep file for its dtype."""
    if os.environ.get("JAX_ENABLE_X64", "").strip().lower() in _TRUE:
        return True
    if getattr(args, "dtype", None) is not None:
        return bool(args.dtype == "float64")
    if args.command == "train" and args.config is not None:
        return _run_table(args).get("dtype") == "float64"
    if args.command == "sweep":
        return any(c.dtype == "float64" for c in _sweep_configs(args))
    return False


class _Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a batch system's wall time), handled as Ctrl-C."""


_RECEIVED: list[int] = []
"""Signals received while a command runs (SIGINT, SIGTERM), in order."""

_COMMAND: list[int] = [0]
"""Serial number of the command that runs with :func:`_terminate` as its handler; 0
while none does (or while it ends)."""

_SERIALS = itertools.count(1)
_RESEND_LOCK = threading.Lock()
_TIMERS: list[threading.Timer] = []

RESEND_S = 0.05
"""Delay after which a signal whose exception Python dropped is sent again (seconds)."""


_DEFERRING: list[bool] = [False]
"""Whether signals are only remembered for now (:func:`_deferred_signals`)."""


def _terminate(signum: int, frame: Any) -> None:
    """Handler of SIGINT and SIGTERM while a command runs: remember the signal and
    raise KeyboardInterrupt (or :class:`_Terminated`); only remember it while the
    command ends or while signals are deferred."""
    _RECEIVED.append(signum)
    if _COMMAND[0] and not _DEFERRING[0]:
        raise _Terminated if signum == signal.SIGTERM else KeyboardInterrupt


@contextlib.contextmanager
def _deferred_signals() -> Iterator[None]:
    """Inside, SIGINT and SIGTERM are only remembered; :func:`_stop_if_signalled`
    afterwards raises for them."""
    _DEFERRING[0] = True
    try:
        yield
    finally:
        _DEFERRING[0] = False


def _resend_later(signum: int) -> None:
    """Send ``signum`` to the main thread again in :data:`RESEND_S` seconds, if the same
    command still runs then. Python drops an exception raised while it runs a garbage-
    collection callback (JAX has one, busiest while JAX is imported) or a finalizer; the
    signal sent again raises where it is heeded."""
    command = _COMMAND[0]

    def resend() -> None:
        with _RESEND_LOCK:
            if command and _COMMAND[0] == command and signal.getsignal(signum) is _terminate:
                signal.pthread_kill(threading.main_thread().ident or 0, signum)

    timer = threading.Timer(RESEND_S, resend)
    timer.daemon = True
    _TIMERS.append(timer)
    timer.start()


def _stop_if_signalled() -> None:
    """Raise for a signal received while a command runs, again: a signal whose
    exception some code swallowed then still stops the command."""
    if _RECEIVED:
        raise _Terminated if signal.SIGTERM in _RECEIVED else KeyboardInterrupt


_PACKAGE = str(Path(__file__).resolve().parent)


@contextlib.contextmanager
def _command_signals() -> Iterator[None]:
    """While a command runs: SIGTERM raises like Ctrl-C, both are remembered
    (:func:`_stop_if_signalled`), and one whose exception Python drops is sent again
    (:func:`_resend_later`), where nobody else handles them (their handlers are
    Python's defaults, in the main thread); thrifty's own warnings print as one line,
    without the source line. All are restored afterwards."""
    main_thread = threading.current_thread() is threading.main_thread()
    defaults = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}
    ours = [
        signum
        for signum, default in defaults.items()
        if main_thread and signal.getsignal(signum) is default
    ]
    unraisable = sys.unraisablehook

    def resend_dropped(info: Any) -> None:
        # the exception of a signal, dropped by Python: sent again, not reported
        if _COMMAND[0] and isinstance(info.exc_value, KeyboardInterrupt):
            terminated = isinstance(info.exc_value, _Terminated)
            _resend_later(signal.SIGTERM if terminated else signal.SIGINT)
        else:
            unraisable(info)

    if ours:
        _RECEIVED.clear()
        _COMMAND[0] = next(_SERIALS)
        for signum in ours:
            signal.signal(signum, _terminate)
        sys.unraisablehook = resend_dropped
    formatting = warnings.formatwarning

    def one_line(
        message: Any, category: type[Warning], filename: str, lineno: int, line: Any = None
    ) -> str:
        if str(Path(filename).resolve()).startswith(_PACKAGE):
            return f"thrifty: warning: {message}\n"
        return formatting(message, category, filename, lineno, line)

    warnings.formatwarning = one_line
    try:
        yield
    finally:
        if warnings.formatwarning is one_line:  # unless someone else changed it since
            warnings.formatwarning = formatting
        if ours:
            _COMMAND[0] = 0  # from here a signal is only remembered, and none is sent again
            with _RESEND_LOCK:  # one being sent now is delivered before the handlers go
                for timer in _TIMERS:
                    timer.cancel()
                _TIMERS.clear()
            for signum in ours:
                if signal.getsignal(signum) is _terminate:
                    signal.signal(signum, defaults[signum])
            if sys.unraisablehook is resend_dropped:
                sys.unraisablehook = unraisable


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``thrifty`` command.

    Exit status: 0 done; 1 a sweep with failed runs; 2 bad options, config or output
    path; 3 a diverged run; 4 a data error; 130 interrupted (Ctrl-C); 141 standard
    output's reader went away; 143 terminated (SIGTERM).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    with _command_signals():
        try:
            # JAX's first import is slow. A signal during it is only remembered: an
            # exception raised inside the import, where C++ calls back into Python, can
            # abort the process; it is raised after the imports instead.
            with _deferred_signals():
                from thrifty.compile_cache import enable_compilation_cache
                from thrifty.data import DataError
                from thrifty.experiments.executors import SchedulerError
                from thrifty.experiments.store import StoreError
                from thrifty.rules.registry import RuleError
            _stop_if_signalled()
        except KeyboardInterrupt as exc:
            _interrupted(parser, exc)
        try:
            with _deferred_signals():
                if _needs_x64(args):
                    import jax

                    jax.config.update("jax_enable_x64", True)
                if args.command in ("train", "sweep", "reproduce"):
                    from thrifty.train import check_environment

                    check_environment()
                enable_compilation_cache()
            _stop_if_signalled()
            status = int(args.func(args))
            if sys.stdout is not None:  # None when started with standard output closed
                sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
            _stop_if_signalled()
            return status
        except (ConfigError, RuleError, SchedulerError, StoreError) as exc:
            parser.exit(2, f"thrifty {args.command}: error: {exc}\n")
        except DataError as exc:
            parser.exit(4, f"thrifty {args.command}: data error: {exc}\n")
        except KeyboardInterrupt as exc:
            _interrupted(parser, exc)
        except BrokenPipeError:
            if not _stdout_closed():
                raise
            # the reader of the output went away (`thrifty rules | head`): end quietly,
            # as a shell does on SIGPIPE
            return 128 + signal.SIGPIPE
    raise AssertionError("unreachable")


def _stdout_closed() -> bool:
    """Whether standard output is a pipe whose reader is gone; if so, point it at
    /dev/null so that nothing more fails at exit."""
    import select
    import stat

    try:
        fd = sys.stdout.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        poll = select.poll()
        poll.register(fd, select.POLLOUT)
        gone = select.POLLERR | select.POLLHUP  # Linux says ERR; macOS and BSD, HUP
        closed = any(events & gone for _, events in poll.poll(0))
    except (OSError, ValueError, AttributeError):  # no real file, or no poll
        return False
    if closed:
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
    return closed


def _interrupted(parser: argparse.ArgumentParser, exc: KeyboardInterrupt) -> NoReturn:
    if isinstance(exc, _Terminated):
        parser.exit(143, "terminated\n")
    parser.exit(130, "interrupted\n")


if __name__ == "__main__":
    sys.exit(main())
