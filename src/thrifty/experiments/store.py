"""The results store: one JSON record per run, written atomically, loaded as a table.

A store is a directory; the record of the run whose config has key ``K``
(:meth:`thrifty.config.RunConfig.key`) is ``<root>/records/K.json``. A record is the
plain-JSON dict that :func:`thrifty.train.run` returns, or, for a run that raised or
whose worker died, a *failed* record (``status="failed"`` and the error text) made by
:func:`failed_record`.

Example
-------
>>> store = ResultStore("results")  # doctest: +SKIP
>>> store.write(record)  # doctest: +SKIP
>>> store.has(record["key"]), store.keys()  # doctest: +SKIP
(True, ['3f2a...'])
>>> df = load("results")  # doctest: +SKIP
>>> df[["n_hidden", "lr", "status", "m0", "m1"]]  # doctest: +SKIP

Notes
-----
Writes go to a temporary file in the same directory, are flushed to disk with
``fsync`` and then renamed over the final name (``os.replace``), so a reader or a
process killed at any instant sees either no record or a whole one, never a partial
one. A temporary file left by a killed writer is never mistaken for a record; it is
removed by :meth:`ResultStore.remove_stale_temporaries` (which :func:`run_sweep`
calls when it starts).

Records are written with Python's JSON conventions: a non-finite float (an
inefficiency of ``inf`` when the minimal energy is 0) is written as ``Infinity``,
which :func:`json.loads` reads back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import re
import secrets
import time
import traceback
import typing
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from thrifty.config import ConfigError, RunConfig
from thrifty.data import stale_temporary, writer_tag

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FINAL_STATUSES",
    "STATUSES",
    "RecordError",
    "ResultStore",
    "StoreError",
    "failed_record",
    "flatten",
    "load",
    "to_parquet",
]

STATUSES = ("converged", "budget", "diverged", "failed")
"""Every status a record may have."""

FINAL_STATUSES = ("converged", "budget", "diverged")
"""Statuses of a finished run; a sweep never runs these again. ``failed`` is re-run."""

_KEY = re.compile(r"^[0-9a-f]{16}$")
_TEMP_SUFFIX = ".tmp"
# Keys every record has, and the ones a record of a finished (not failed) run adds.
_REQUIRED: dict[str, type] = {"key": str, "config": dict, "status": str}
_REQUIRED_FINISHED: dict[str, type] = {"samples": int, "curve": list, "energy": dict}

# Top-level scalar columns, in this order, before the config fields.
BASE_COLUMNS = (
    "key",
    "status",
    "samples",
    "diverged_at",
    "accuracy",
    "test_accuracy",
    "wall_time_s",
    "samples_per_s",
    "error",
)


class StoreError(OSError):
    """A record could not be written or the store could not be used; names the path."""


class RecordError(ValueError):
    """A stored record is unreadable or malformed.

    Attributes
    ----------
    path : pathlib.Path
        The offending file.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"bad record {str(path)!r}: {reason}")
        self.path = path
        self.reason = reason


def _count_or_sum(value: Any, *, count: bool) -> bool:
    """Whether ``value`` can be a meter of a record: a count (an int in [0, 2**63)) or a
    sum >= 0, infinity included (an M1 charged for an overflowing update by older
    versions, or a float64 total that overflowed; not NaN)."""
    if isinstance(value, bool):
        return False
    if count:
        return isinstance(value, int) and 0 <= value < 2**63
    return isinstance(value, int | float) and value >= 0


def validate_record(record: Any, *, path: Path | None = None) -> dict[str, Any]:
    """Check that ``record`` has the fields every record needs; return it.

    Parameters
    ----------
    record : Any
        A decoded record.
    path : pathlib.Path, optional
        Where it was read from, for the message; its stem must equal the record's key.

    Raises
    ------
    RecordError
        Naming the path and the missing or mistyped field.
    """
    where = path if path is not None else Path("<record>")
    if not isinstance(record, dict):
        raise RecordError(where, f"a record must be a JSON object, got {type(record).__name__}")
    required = dict(_REQUIRED)
    if record.get("status") != "failed":
        required.update(_REQUIRED_FINISHED)
    for name, kind in required.items():
        if name not in record:
            raise RecordError(where, f"missing field {name!r}")
        if not isinstance(record[name], kind) or isinstance(record[name], bool):
            raise RecordError(
                where,
                f"field {name!r} must be {kind.__name__}, got {type(record[name]).__name__}",
            )
    if not _KEY.match(record["key"]):
        raise RecordError(where, f"key must be 16 hex digits, got {record['key']!r}")
    if record["status"] not in STATUSES:
        raise RecordError(
            where, f"status must be one of {', '.join(STATUSES)}; got {record['status']!r}"
        )
    if "total" not in record.get("energy", {"total": None}):
        raise RecordError(where, "field 'energy' has no 'total'")
    if record["status"] != "failed":
        for part in ("total", "hidden", "output"):
            energy = record["energy"].get(part)
            if not isinstance(energy, dict):
                raise RecordError(where, f"field 'energy.{part}' must be a table")
            meters = {k: v for k, v in energy.items() if k != "m_alpha"}
            alphas = energy.get("m_alpha") or {}
            if not isinstance(alphas, dict):
                raise RecordError(where, f"field 'energy.{part}.m_alpha' must be a table")
            meters |= {f"m_alpha.{a}": v for a, v in alphas.items()}
            for name in ("m0", "m1"):
                meters.setdefault(name, None)  # both must be there
            for name, value in meters.items():
                if name.startswith("m1") and value is None and record["status"] == "diverged":
                    continue  # an infinite M1 of older records, made null for a strict parser
                if name.startswith("m_alpha.") and value is None:
                    continue
                if not _count_or_sum(value, count=name.startswith("m0")):
                    raise RecordError(
                        where,
                        f"field 'energy.{part}.{name}' must be a "
                        f"{'count' if name.startswith('m0') else 'number'} >= 0, "
                        f"got {value!r:.80}",
                    )
        if not 0 <= record["samples"] < 2**63:
            raise RecordError(where, f"field 'samples' must be >= 0, got {record['samples']!r}")
        for name in ("accuracy", "test_accuracy"):
            value = record.get(name)
            if value is not None and not (
                isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
            ):
                raise RecordError(where, f"field {name!r} must be in [0, 1], got {value!r:.80}")
    if path is not None and path.stem != record["key"]:
        raise RecordError(where, f"file name does not match its key {record['key']!r}")
    try:
        config = RunConfig.from_dict(record["config"])
    except (ConfigError, TypeError, ValueError) as exc:
        raise RecordError(where, f"its config is not a valid config: {exc}") from None
    if record["key"] not in config.keys_as_stored(record["config"]):
        raise RecordError(
            where, f"its config is that of run {config.key()}, not of its key {record['key']!r}"
        )
    return record


ERROR_CHARS = 500
"""Length at which a failed record's one-line ``error`` is cut (its ``traceback`` keeps
the whole message)."""


def _one_line(text: str) -> str:
    """``text`` with its lines joined by single spaces, cut at :data:`ERROR_CHARS`."""
    line = " ".join(text.split())
    return line if len(line) <= ERROR_CHARS else line[: ERROR_CHARS - 1] + "…"


def failed_record(config: RunConfig, error: BaseException, *, attempts: int = 1) -> dict[str, Any]:
    """The record of a run that raised, or whose worker died.

    Parameters
    ----------
    config : RunConfig
    error : BaseException
        What the run raised (its traceback, remote parts included, goes into the record).
    attempts : int
        How many times the run was tried.

    Returns
    -------
    dict
        ``key``, ``config`` (resolved), ``status="failed"``, ``error`` (the error's
        type and message on one line, at most :data:`ERROR_CHARS` characters),
        ``traceback``, ``attempts``, ``failed_at`` (Unix time) and empty result fields.
    """
    resolved = config.resolved()
    return {
        "config": resolved.to_dict(),
        "key": config.key(),
        "status": "failed",
        "error": _one_line(f"{type(error).__name__}: {error}"),
        "traceback": "".join(traceback.format_exception(error)),
        "attempts": attempts,
        "failed_at": time.time(),
        "samples": None,
        "diverged_at": None,
        "curve": [],
        "accuracy": None,
        "test_accuracy": None,
        "wall_time_s": None,
        "samples_per_s": None,
    }


class ResultStore:
    """A directory of run records, ``<root>/records/<key>.json``.

    Parameters
    ----------
    root : str or os.PathLike
        The store's directory; created on the first write.

    Examples
    --------
    >>> store = ResultStore("results")  # doctest: +SKIP
    >>> store.write(record); store.read(record["key"])["status"]  # doctest: +SKIP
    'converged'
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.dir = self.root / "records"

    def __repr__(self) -> str:
        return f"ResultStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """Path of the record of ``key`` (which need not exist)."""
        if not isinstance(key, str) or not _KEY.match(key):
            raise KeyError(f"not a run key (16 hex digits): {key!r}")
        return self.dir / f"{key}.json"

    def has(self, key: str) -> bool:
        """Whether a record of ``key`` exists (of any status, failed included)."""
        return self.path(key).is_file()

    def is_final(self, key: str) -> bool:
        """Whether ``key`` has a readable record of a finished run (not ``failed``).

        A corrupted record counts as missing, so a sweep runs it again.
        """
        if not self.has(key):
            return False
        try:
            return self.read(key)["status"] in FINAL_STATUSES
        except RecordError:
            return False

    def check(self, *, writable: bool = False) -> None:
        """Raise :class:`StoreError` when the records directory's path, or a directory
        above it that does not exist yet, is taken by something that is not a directory;
        with ``writable``, also when the deepest existing directory cannot be written
        (checked before a sweep trains anything, so no finished run is lost)."""
        if self.dir.exists() and not self.dir.is_dir():
            raise StoreError(
                f"{str(self.dir)!r} exists and is not a directory: the store cannot hold "
                "records there"
            )
        if (
            self.root.name == "records"
            and not self.dir.exists()
            and self.root.is_dir()
            and any(_KEY.match(p.stem) for p in self.root.glob("*.json"))
        ):
            raise StoreError(
                f"{str(self.root)!r} is the records directory of a store: give the store "
                f"itself, {str(self.root.parent)!r}"
            )
        existing = self.dir
        while not existing.exists() and existing != existing.parent:
            if existing.is_symlink():
                raise StoreError(
                    f"{str(existing)!r} is a symbolic link to nothing: the store "
                    f"{str(self.root)!r} cannot be made there"
                )
            existing = existing.parent
        if not existing.is_dir():
            raise StoreError(
                f"{str(existing)!r} is not a directory: the store {str(self.root)!r} cannot "
                "be made there"
            )
        if writable and not os.access(existing, os.W_OK | os.X_OK):
            raise StoreError(f"the directory {str(existing)!r} cannot be written")

    def keys(self) -> list[str]:
        """Keys of every stored record, sorted (temporary files are not records).

        Raises :class:`StoreError` when the records directory is not a directory."""
        self.check()
        if not self.dir.is_dir():
            return []
        return sorted(
            p.stem for p in self.dir.iterdir() if p.suffix == ".json" and _KEY.match(p.stem)
        )

    def read(self, key: str) -> dict[str, Any]:
        """The record of ``key``.

        Raises
        ------
        KeyError
            No record of ``key``.
        RecordError
            The file is not valid JSON or lacks a required field; names the path.
        """
        path = self.path(key)
        if not path.is_file():
            raise KeyError(f"no record {key!r} in {str(self.dir)!r}")
        return read_record(path)

    def records(self, *, errors: Literal["raise", "skip"] = "raise") -> list[dict[str, Any]]:
        """Every record, in key order.

        Parameters
        ----------
        errors : {"raise", "skip"}
            ``"raise"``: a bad record raises :class:`RecordError`; ``"skip"``: bad records
            are left out with a warning that names them (see :meth:`scan`).
        """
        if errors not in ("raise", "skip"):
            raise ValueError(f"errors must be one of raise, skip; got {errors!r}")
        good, bad = self.scan()
        if bad and errors == "raise":
            raise bad[0]
        if bad:
            warnings.warn(
                f"skipped {len(bad)} bad record(s): " + "; ".join(str(e) for e in bad),
                stacklevel=2,
            )
        return good

    def scan(self) -> tuple[list[dict[str, Any]], list[RecordError]]:
        """Read every record: the good ones and the errors of the bad ones (with paths)."""
        good: list[dict[str, Any]] = []
        bad: list[RecordError] = []
        for key in self.keys():
            try:
                good.append(read_record(self.dir / f"{key}.json"))
            except RecordError as exc:
                bad.append(exc)
        return good, bad

    def write(self, record: dict[str, Any]) -> Path:
        """Write ``record`` atomically as ``records/<record["key"]>.json``; return its path.

        An existing record of the same key is replaced (a failed run that succeeds on a
        later sweep).

        Raises
        ------
        RecordError
            ``record`` lacks a required field (nothing is written).
        StoreError
            The file could not be written (read-only directory, disk full, ...); no
            partial or temporary file is left behind.
        """
        validate_record(record)
        path = self.path(record["key"])
        try:
            data = json.dumps(record, indent=1, sort_keys=True).encode()
        except (TypeError, ValueError) as exc:
            raise RecordError(path, f"not JSON-serialisable: {exc}") from None
        tmp: str | None = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            # a unique name, created with the permissions of the user's umask (a
            # store shared by a group stays readable to it)
            name = f".{path.stem}.{writer_tag()}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"
            fd = os.open(self.dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            tmp = str(self.dir / name)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            tmp = None
            _fsync_dir(self.dir)
        except OSError as exc:
            raise StoreError(f"cannot write record {str(path)!r}: {exc}") from exc
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        return path

    def temporaries(self) -> list[Path]:
        """Temporary files of unfinished writes in the records directory."""
        if not self.dir.is_dir():
            return []
        return sorted(
            p for p in self.dir.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")
        )

    def remove_stale_temporaries(self, *, max_age_s: float = 86400.0) -> list[Path]:
        """Remove temporary files left by writers that died; return them.

        A temporary file is stale when the process that made it (its name holds host and
        process id) no longer runs on this host, or when it is older than ``max_age_s``
        (writers on other hosts of a shared file system).
        """
        removed = []
        for p in self.temporaries():
            parts = p.name.split(".")
            # ".<key>.<host>_<pid>.<random>.tmp" -> ["", key, "host_pid", random, "tmp"]
            writer = parts[2] if len(parts) >= 5 else ""
            try:
                if stale_temporary(p, writer, max_age_s):
                    p.unlink()
                    removed.append(p)
            except OSError:  # gone meanwhile, or a store this process cannot write
                continue
        return removed


def read_record(path: Path) -> dict[str, Any]:
    """Read and validate one record file; :class:`RecordError` names the path."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(path, f"cannot read: {exc}") from None
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise RecordError(path, f"not valid JSON: {exc}") from None
    return validate_record(record, path=path)


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- tables


@functools.cache
def _float_fields() -> frozenset[str]:
    """RunConfig fields typed ``float`` (an integer there, e.g. ``lr = 1``, is a float)."""
    hints = typing.get_type_hints(RunConfig)
    return frozenset(
        name for name, hint in hints.items() if hint is float or float in typing.get_args(hint)
    )


def _config_columns(config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    floats = _float_fields()
    for f in dataclasses.fields(RunConfig):
        value = config.get(f.name)
        if f.name == "rules":
            value = " + ".join(value or ())
        elif f.name == "alphas":
            value = ",".join(repr(float(a)) for a in value or ())
        elif f.name in floats and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        out[f.name] = value
    return out


def _flatten_layers(block: dict[str, Any], suffix: str = "") -> dict[str, Any]:
    """``{"hidden": {...}, "output": {...}, "total": {...}}`` -> ``m0``, ``m0_hidden``, ..."""
    out: dict[str, Any] = {}
    for layer, values in block.items():
        if not isinstance(values, dict):
            continue
        tail = "" if layer == "total" else f"_{layer}"
        for name, value in _leaves(values):
            out[f"{name}{suffix}{tail}"] = value
    return out


def _leaves(values: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in values.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{name}_")
        else:
            yield f"{prefix}{name}", value


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One table row of a record.

    Columns: :data:`BASE_COLUMNS`; every :class:`~thrifty.config.RunConfig` field
    (``rules`` joined by ``" + "``, ``alphas`` by ``","``, ``""`` for none); the energy
    (``m0``, ``m1``, ``m0_potentiation``, ... in total, the same with ``_hidden`` and
    ``_output`` per layer, ``m_alpha_<α>`` for extra meters); the minimal energy
    (``m0_min``, ``m1_min``, per layer ``m0_min_hidden``, ...); the inefficiency
    (``ineff_m0``, ``ineff_m1``); the synapse summary per layer
    (``remaining_m1_hidden``, ...); ``n_synapses`` (total and per layer); ``curve``
    (list of ``[samples, accuracy]``); ``version_<package>``; ``data_source``.
    """
    row: dict[str, Any] = {name: record.get(name) for name in BASE_COLUMNS}
    row.update(_config_columns(record.get("config") or {}))
    if record.get("energy"):
        row.update(_flatten_layers(record["energy"]))
    if record.get("minimal_energy"):
        row.update(_flatten_layers(record["minimal_energy"], suffix="_min"))
    for name, value in (record.get("inefficiency") or {}).items():
        row[f"ineff_{name}"] = value
    summary = record.get("synapse_summary") or {}
    for layer, values in summary.items():
        if isinstance(values, dict):
            for name, value in _leaves(values):
                row[f"{name}_{layer}"] = value
        else:
            row[layer] = values
    n_syn = record.get("n_synapses") or {}
    if n_syn:
        row["n_synapses"] = sum(int(v) for v in n_syn.values())
        for layer, value in n_syn.items():
            row[f"n_synapses_{layer}"] = value
    row["curve"] = [[float(s), float(a)] for s, a in record.get("curve") or []]
    simpson = record.get("simpson")
    if isinstance(simpson, dict) and simpson.get("values"):
        values = [[float(v) for v in r] for r in simpson["values"]]
        names = list(simpson.get("columns") or ["start", "hidden", "output"])[1:]
        row["simpson_curve"] = values
        for i, layer in enumerate(names, start=1):
            row[f"simpson_start_{layer}"] = values[0][i]
            row[f"simpson_end_{layer}"] = values[-1][i]
        if "hidden" in names:
            row["simpson_start"] = row["simpson_start_hidden"]
            row["simpson_end"] = row["simpson_end_hidden"]
    for name, value in (record.get("versions") or {}).items():
        row[f"version_{name}"] = value
    row["data_source"] = record.get("data_source")
    return row


def load(
    root: str | os.PathLike[str] | ResultStore, *, errors: Literal["raise", "skip"] = "raise"
) -> pd.DataFrame:
    """The records of a store as a :class:`pandas.DataFrame`, one row per run.

    Parameters
    ----------
    root : str, os.PathLike or ResultStore
        The store.
    errors : {"raise", "skip"}
        What to do with a corrupted record: raise :class:`RecordError` naming its path,
        or leave it out with a warning; the skipped paths are in
        ``df.attrs["skipped"]`` either way (empty when none).

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        ``root`` does not exist, or is a file.
    StoreError
        ``root/records`` exists and is not a directory, or ``root`` is the records
        directory of a store (give the store itself). A directory without records gives
        an empty table, with a warning.

    Returns
    -------
    pandas.DataFrame
        Columns as :func:`flatten` describes; integer columns with missing values
        (failed runs) use pandas' nullable ``Int64`` so counts stay exact.

    Examples
    --------
    >>> df = load("results")  # doctest: +SKIP
    >>> df.groupby("n_hidden")["m0"].median()  # doctest: +SKIP
    """
    import pandas as pd

    if not isinstance(root, ResultStore):
        if not os.path.exists(root):
            raise FileNotFoundError(f"no result store at {os.fspath(root)!r}: it does not exist")
        if not os.path.isdir(root):
            raise NotADirectoryError(
                f"{os.fspath(root)!r} is a file; a result store is a directory (sweep --out)"
            )
    store = root if isinstance(root, ResultStore) else ResultStore(root)
    store.check()  # a file in the way, or the records directory of a store given
    if not isinstance(root, ResultStore) and not store.dir.exists():
        warnings.warn(
            f"no records at {os.fspath(root)!r}: a result store (sweep --out) holds "
            "them in its records/ directory",
            stacklevel=2,
        )
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be one of raise, skip; got {errors!r}")
    good, bad = store.scan()
    if bad and errors == "raise":
        raise bad[0]
    if bad:
        warnings.warn(
            f"skipped {len(bad)} bad record(s): " + "; ".join(str(e) for e in bad), stacklevel=2
        )
    rows = [flatten(r) for r in good]
    columns = list(BASE_COLUMNS) + [f.name for f in dataclasses.fields(RunConfig)]
    for row in rows:
        columns.extend(name for name in row if name not in columns)
    data: dict[str, Any] = {}
    for name in columns:
        values = [row.get(name) for row in rows]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            data[name] = pd.array(values, dtype="Int64")
        else:
            data[name] = pd.Series(values, dtype=object if not present else None)
    df = pd.DataFrame(data, columns=columns)
    df.attrs["skipped"] = [str(e.path) for e in bad]
    df.attrs["store"] = str(store.root)
    return df


def to_parquet(
    root: str | os.PathLike[str] | ResultStore,
    path: str | os.PathLike[str],
    *,
    errors: Literal["raise", "skip"] = "raise",
) -> Path:
    """Write the table of :func:`load` to a Parquet file (needs ``pyarrow``); return its path."""
    df = load(root, errors=errors)
    out = Path(path)
    df.to_parquet(out, index=False)
    return out
