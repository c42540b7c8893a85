"""Tests of thrifty.experiments: the results store, config files, sweeps, progress."""

from __future__ import annotations

import concurrent.futures as cf
import copy
import errno
import io
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from thrifty.config import ConfigError, RunConfig
from thrifty.data import writer_tag
from thrifty.experiments import (
    RecordError,
    ResultStore,
    StoreError,
    configs_from_file,
    configs_from_mapping,
    failed_record,
    flatten,
    load,
    run_one,
    run_sweep,
    to_parquet,
)
from thrifty.experiments.store import FINAL_STATUSES


def small(**changes: Any) -> RunConfig:
    """A run of a second or less once compiled: synthetic data, 12 hidden units."""
    fields: dict[str, Any] = {
        "dataset": "synthetic",
        "n_hidden": 12,
        "budget_epochs": 1.0,
        "check_interval": 500,
    }
    fields.update(changes)
    return RunConfig(**fields)


@pytest.fixture(scope="module")
def record() -> dict[str, Any]:
    """One real record (run in this process; compiles the step once for the module)."""
    return run_one(small().to_dict())


def fake(seed: int = 0, key: str | None = None, **changes: Any) -> dict[str, Any]:
    """A minimal, valid record of a finished run of ``small(seed=seed)`` (no training);
    ``key`` other than its config's makes a bad one."""
    rec: dict[str, Any] = {
        "key": small(seed=seed).key() if key is None else key,
        "config": small(seed=seed).resolved().to_dict(),
        "status": "converged",
        "samples": 500,
        "curve": [[500, 0.93]],
        "energy": {"hidden": {"m0": 5, "m1": 0.5}, "output": {"m0": 1, "m1": 0.1}},
    }
    rec["energy"]["total"] = {"m0": 6, "m1": 0.6}
    rec.update(changes)
    return rec


K0, K1 = fake()["key"], fake(seed=1)["key"]
"""The keys of the fake records of seeds 0 and 1."""

# ------------------------------------------------------------------------------- store


def test_store_round_trip(tmp_path: Path, record: dict[str, Any]) -> None:
    store = ResultStore(tmp_path / "results")
    assert store.keys() == [] and not store.has(record["key"])
    path = store.write(record)
    assert path == tmp_path / "results" / "records" / f"{record['key']}.json"
    assert store.has(record["key"]) and store.is_final(record["key"])
    assert store.keys() == [record["key"]]
    assert store.read(record["key"]) == json.loads(json.dumps(record))
    assert store.records() == [store.read(record["key"])]
    assert store.temporaries() == []
    with pytest.raises(KeyError, match="no record"):
        store.read("ffffffffffffffff")


def test_write_replaces_a_record_atomically(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.write(fake(status="failed", error="boom"))
    assert not store.is_final(K0)
    store.write(fake())
    assert store.read(K0)["status"] == "converged"
    assert sorted(p.name for p in store.dir.iterdir()) == [f"{K0}.json"]


def test_write_failure_is_store_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ResultStore(tmp_path)
    store.write(fake())
    before = store.path(K0).read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(StoreError, match="No space left") as info:
        store.write(fake(samples=1000))
    assert f"{K0}.json" in str(info.value)
    monkeypatch.undo()
    # The old record is untouched, and no temporary file is left.
    assert store.path(K0).read_bytes() == before
    assert sorted(p.name for p in store.dir.iterdir()) == [f"{K0}.json"]


def test_read_only_directory_is_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ResultStore(tmp_path)
    store.dir.mkdir(parents=True)
    store.dir.chmod(0o500)
    try:
        probe = store.dir / "probe"
        try:
            probe.write_text("")  # root ignores permissions: simulate the refusal instead
            probe.unlink()

            def refuse(*args: Any, **kwargs: Any) -> Any:
                raise PermissionError(errno.EACCES, "Permission denied")

            monkeypatch.setattr(os, "open", refuse)
        except PermissionError:
            pass
        with pytest.raises(StoreError, match="Permission denied"):
            store.write(fake())
        monkeypatch.undo()
    finally:
        store.dir.chmod(0o700)
    assert list(store.dir.iterdir()) == []


def test_write_rejects_incomplete_records(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    with pytest.raises(RecordError, match="missing field 'energy'"):
        store.write({k: v for k, v in fake().items() if k != "energy"})
    with pytest.raises(RecordError, match="key must be 16 hex digits"):
        store.write(fake(key="../escape"))
    with pytest.raises(RecordError, match="status must be one of"):
        store.write(fake(status="done"))
    assert store.keys() == []


@pytest.mark.parametrize(
    ("content", "reason"),
    ids=[
        "json",
        "not-object",
        "missing",
        "type",
        "misnamed",
        "no-m0",
        "m1-text",
        "m1-null",
        "negative",
        "edited-config",
        "bad-config",
        "huge-count",
        "negative-sum",
        "negative-samples",
        "nan-sum",
        "accuracy",
    ],
    argvalues=[
        ('{"key": "0123456789abcdef", "status": "conv', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({k: v for k, v in fake().items() if k != "curve"}), "missing field 'curve'"),
        (json.dumps(fake(samples="many")), "field 'samples' must be int"),
        (json.dumps(fake(key="fedcba9876543210")), "does not match its key"),
        (json.dumps(fake(energy={"total": {"m1": 1.0}})), r"'energy.total.m0' must be a count"),
        (
            json.dumps(fake(energy={"total": {"m0": 3, "m1": "1.0"}})),
            r"'energy.total.m1' must be a number >= 0",
        ),
        (json.dumps(fake(energy={"total": {"m0": 3, "m1": None}})), r"'energy.total.m1' must"),
        (
            json.dumps(fake(energy={**fake()["energy"], "hidden": {"m0": -5, "m1": 0.5}})),
            r"'energy.hidden.m0' must be a count >= 0, got -5",
        ),
        (
            json.dumps(fake(config={**fake()["config"], "n_hidden": 999})),
            r"its config is that of run [0-9a-f]{16}, not of its key",
        ),
        (json.dumps(fake(config={"n_hidden": "many"})), "its config is not a valid config"),
        (
            json.dumps(fake(energy={**fake()["energy"], "total": {"m0": 10**400, "m1": 0.6}})),
            r"'energy.total.m0' must be a count >= 0",
        ),
        (
            json.dumps(
                fake(
                    energy={**fake()["energy"], "output": {"m0": 1, "m1": 0.1, "m1_transient": -1}}
                )
            ),
            r"'energy.output.m1_transient' must be a number >= 0",
        ),
        (json.dumps(fake(samples=-1)), r"field 'samples' must be >= 0"),
        (
            json.dumps(fake(energy={**fake()["energy"], "total": {"m0": 6, "m1": math.nan}})),
            r"'energy.total.m1' must be a number >= 0, got nan",
        ),
        (json.dumps(fake(accuracy=2.0)), r"field 'accuracy' must be in \[0, 1\]"),
    ],
)
def test_corrupted_record_names_its_path(tmp_path: Path, content: str, reason: str) -> None:
    store = ResultStore(tmp_path)
    store.write(fake(seed=1))
    bad = store.path(K0)
    bad.write_text(content)
    with pytest.raises(RecordError, match=reason) as info:
        store.read(K0)
    assert info.value.path == bad and str(bad) in str(info.value)
    with pytest.raises(RecordError, match=reason):
        load(tmp_path)
    with pytest.warns(UserWarning, match=str(bad)):
        df = load(tmp_path, errors="skip")
    assert list(df["key"]) == [K1]
    assert df.attrs["skipped"] == [str(bad)]
    assert not store.is_final(K0)


def test_a_record_keyed_by_its_rule_string_as_written_still_loads(tmp_path: Path) -> None:
    """Runs recorded before rule strings were tidied bear the key of the string as
    written (``"top-k: fraction=0.1"``): their records stay good; an edited one is not."""
    from thrifty.config import _key_of

    config = small(rules=("top-k: fraction=0.1",))
    stored = {**config.resolved().to_dict(), "rules": ["top-k: fraction=0.1"]}
    old_key = _key_of(stored)
    assert old_key != config.key()
    record = fake(key=old_key, config=stored)
    store = ResultStore(tmp_path)
    store.path(old_key).parent.mkdir(parents=True)
    store.path(old_key).write_text(json.dumps(record))
    assert store.is_final(old_key) and list(load(tmp_path)["key"]) == [old_key]
    edited = {**stored, "n_hidden": stored["n_hidden"] + 1}
    store.path(old_key).write_text(json.dumps({**record, "config": edited}))
    with pytest.raises(RecordError, match="its config is that of run"):
        load(tmp_path)


def test_a_finished_sweep_reports_from_a_store_it_cannot_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records copied to a read-only place: a sweep with nothing left to run reports
    (as a reproduction drawing its figures does); one with runs to do stops first."""
    store = ResultStore(tmp_path / "store")
    store.write(fake())
    stale = store.dir / ".0123456789abcdef.otherhost_123.x.tmp"
    stale.write_text("{")
    os.utime(stale, (0, 0))  # old enough to be removed, were the store writable

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "unlink", refuse)
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if mode & os.W_OK else real_access(p, mode)
    )
    result = run_sweep([small()], store, progress=False)
    assert (result.done, result.skipped) == (0, 1)
    with pytest.raises(StoreError, match="cannot be written"):
        run_sweep([small(seed=1)], store, progress=False)


def test_a_sweep_trains_raw_synthetic_inputs_on_their_own_data(tmp_path: Path) -> None:
    """A config and its twin with ``inputs="raw"`` in one sweep (one process, which
    keeps the data it loaded) each train on their own data, as run alone."""
    from thrifty.train import load_dataset, run

    twins = [small(), small(inputs="raw")]
    run_sweep(twins, tmp_path, progress=False)
    swept = load(tmp_path).set_index("key")["m1"]
    alone = {c.key(): run(c, load_dataset(c))["energy"]["total"]["m1"] for c in twins}
    assert swept[twins[0].key()] != swept[twins[1].key()]
    assert all(swept[k] == pytest.approx(v, rel=1e-12) for k, v in alone.items())


def test_m_alpha_may_overflow_the_runs_float_type(tmp_path: Path) -> None:
    """Σ|Δw|^α at large α may be inf in float32 (it stops no run): the record is good."""
    hidden = {"m0": 5, "m1": 0.5, "m_alpha": {"50.0": math.inf, "0.5": 1.5}}
    store = ResultStore(tmp_path)
    store.write(fake(energy={**fake()["energy"], "hidden": hidden}))
    assert load(tmp_path)["m_alpha_50.0_hidden"].tolist() == [math.inf]


def test_a_sweep_refuses_a_records_directory_an_empty_path_and_a_dangling_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paths where a sweep would train and then fail to write, or write where no one
    looks, are refused before any run."""
    from thrifty import train

    ran: list[Any] = []
    monkeypatch.setattr(train, "run", lambda *args, **kwargs: ran.append(args))
    ResultStore(tmp_path / "store").write(fake())
    with pytest.raises(StoreError, match="is the records directory of a store: give the store"):
        run_sweep([small(seed=1)], tmp_path / "store" / "records", progress=False)
    with pytest.raises(ValueError, match="root must name the store's directory"):
        run_sweep([small(seed=1)], "", progress=False)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(StoreError, match="is a symbolic link to nothing"):
        run_sweep([small(seed=1)], tmp_path / "dangling", progress=False)
    assert ran == []


def test_a_diverged_record_may_hold_a_null_m1(tmp_path: Path) -> None:
    """An infinite M1 of an older diverged record, replaced by null for a strict JSON
    parser, is still a finished record (M1 unknown), not a damaged one."""
    store = ResultStore(tmp_path)
    unknown = {"m0": 3, "m1": None}
    energy = {"total": unknown, "hidden": unknown, "output": unknown}
    record = fake(status="diverged", diverged_at=5, energy=energy)
    store.path(record["key"]).parent.mkdir(parents=True)
    store.path(record["key"]).write_text(json.dumps(record))
    assert store.is_final(record["key"])
    assert load(tmp_path)["m1"].isna().all()
    # older versions charged the overflowing update: Infinity
    infinite = {"m0": 3, "m1": math.inf}
    energy = {"total": infinite, "hidden": infinite, "output": {"m0": 0, "m1": 0.0}}
    store.path(record["key"]).write_text(json.dumps({**record, "energy": energy}))
    assert store.is_final(record["key"]) and load(tmp_path)["m1"].tolist() == [math.inf]


def test_a_failed_records_error_is_one_line_and_its_traceback_whole() -> None:
    message = "scan carry mismatch\n  first detail\n\n  second detail " + "x" * 2000
    record = failed_record(small(), TypeError(message))
    assert "\n" not in record["error"] and len(record["error"]) <= 500
    assert record["error"].startswith("TypeError: scan carry mismatch first detail second")
    assert message in record["traceback"]
    short = failed_record(small(), RuntimeError("out of memory"))
    assert short["error"] == "RuntimeError: out of memory"


def test_records_are_written_with_the_permissions_of_the_umask(tmp_path: Path) -> None:
    """A store shared by a group stays readable to it: a record is created as any file
    is (0o666 less the umask), not private to its writer."""
    previous = os.umask(0o022)
    try:
        path = ResultStore(tmp_path).write(fake())
        os.umask(0o027)
        other = ResultStore(tmp_path / "other").write(fake())
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644
    assert other.stat().st_mode & 0o777 == 0o640


def test_stale_temporaries_are_removed_and_never_records(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.write(fake())
    dead = store.dir / ".0123456789abcdef.somehost_1.x.tmp"
    dead.write_text('{"partial": ')
    host = writer_tag().rpartition("_")[0]
    mine_dead = store.dir / f".fedcba9876543210.{host}_999999999.y.tmp"
    mine_dead.write_text("{")
    alive = store.dir / f".fedcba9876543210.{writer_tag()}.z.tmp"
    alive.write_text("{")
    assert store.keys() == [K0]
    removed = store.remove_stale_temporaries()
    # Another host's file is kept until it is old; a dead local writer's file goes.
    assert removed == [mine_dead]
    os.utime(dead, (0, 0))
    assert store.remove_stale_temporaries() == [dead]
    assert store.temporaries() == [alive]


# ------------------------------------------------------------------------------- tables


def test_flatten_columns(record: dict[str, Any]) -> None:
    rec = copy.deepcopy(record)
    rec["config"]["rules"] = ["subnet:units=5", "top-k:fraction=0.1"]
    rec["config"]["alphas"] = [0.5, 2.0]
    rec["synapse_summary"] = {
        "hidden": {"remaining_m0": 3, "remaining_m1": 0.25},
        "output": {"remaining_m0": 1, "remaining_m1": 0.5},
    }
    rec["energy"]["total"]["m_alpha"] = {"0.5": 1.5}
    rec["simpson"] = {
        "window": 500,
        "columns": ["start", "hidden", "output"],
        "values": [[0, 900.0, 120.0], [500, 40.0, 130.0]],
    }
    row = flatten(rec)
    assert row["simpson_start"] == row["simpson_start_hidden"] == 900.0
    assert row["simpson_end"] == 40.0 and row["simpson_end_output"] == 130.0
    assert row["simpson_curve"] == rec["simpson"]["values"]
    assert row["rules"] == "subnet:units=5 + top-k:fraction=0.1"
    assert row["alphas"] == "0.5,2.0"
    for name in ("m0", "m1", "m0_potentiation", "m1_potentiation", "m1_transient"):
        assert row[name] == record["energy"]["total"][name]
        assert row[f"{name}_hidden"] == record["energy"]["hidden"][name]
        assert row[f"{name}_output"] == record["energy"]["output"][name]
    assert row["m_alpha_0.5"] == 1.5
    assert row["m0_min"] == record["minimal_energy"]["total"]["m0"]
    assert row["m1_min_hidden"] == record["minimal_energy"]["hidden"]["m1"]
    assert row["ineff_m0"] == record["inefficiency"]["m0"]
    assert row["ineff_m1"] == record["inefficiency"]["m1"]
    assert row["remaining_m1_hidden"] == 0.25 and row["remaining_m0_output"] == 1
    assert row["n_synapses"] == 12 * 785 + 10 * 13
    assert row["curve"] == [[float(s), float(a)] for s, a in record["curve"]]
    assert row["version_jax"] == record["versions"]["jax"]
    for name in ("key", "status", "samples", "diverged_at", "accuracy", "test_accuracy"):
        assert row[name] == record[name]
    assert flatten(fake())["rules"] == "" and flatten(fake())["alphas"] == ""


@pytest.mark.parametrize(
    ("dataset", "budget", "needle"),
    [("mnist", 0.01, "budget of 500 samples"), ("synthetic", 0.1, "budget of 200 samples")],
)
def test_a_budget_shorter_than_a_check_refuses_the_sweep_before_any_run(
    tmp_path: Path, dataset: str, budget: float, needle: str
) -> None:
    """Stored data sets have known sizes; synthetic data (2000 training samples from
    the sweep's loader) are made first. Either way no run starts."""
    configs = [RunConfig(dataset=dataset, n_hidden=5, budget_epochs=b) for b in (1.0, budget)]
    with pytest.raises(ConfigError, match=rf"config 1 .*{needle}"):
        run_sweep(configs, tmp_path / "r")
    records = tmp_path / "r" / "records"
    assert not records.exists() or not any(records.iterdir())


def test_load_of_a_missing_store_or_a_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(tmp_path / "results")
    assert not (tmp_path / "results").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        load(tmp_path / "file")
    # a directory that holds no store is said so; its records directory is named
    ResultStore(tmp_path / "store").write(fake())
    with pytest.raises(
        StoreError, match="is the records directory of a store: give the store itself"
    ):
        load(tmp_path / "store" / "records")
    (tmp_path / "empty").mkdir()
    with pytest.warns(UserWarning, match="no records at .*records/ directory"):
        assert load(tmp_path / "empty").empty
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load(tmp_path / "store")) == 1


def test_a_records_path_taken_by_a_file_stops_load_and_sweep_before_any_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``<out>/records`` is a file: loading raises instead of giving an empty table, and
    a sweep stops before training anything."""
    from thrifty import train

    (tmp_path / "records").write_text("not a directory")
    with pytest.raises(StoreError, match="is not a directory"):
        load(tmp_path)
    ran: list[Any] = []
    monkeypatch.setattr(train, "run", lambda *args, **kwargs: ran.append(args))
    with pytest.raises(StoreError, match="is not a directory"):
        run_sweep([small()], tmp_path, progress=False)
    # the store itself, or a directory above it, is a file
    for root in (tmp_path / "records", tmp_path / "records" / "deeper" / "results"):
        with pytest.raises(StoreError, match=r"is not a directory: the store .* cannot be made"):
            run_sweep([small()], root, progress=False)
    assert ran == []


def test_load_and_parquet(tmp_path: Path, record: dict[str, Any]) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    store = ResultStore(tmp_path / "r")
    store.write(record)
    store.write(failed_record(small(seed=9), RuntimeError("out of memory")))
    df = load(tmp_path / "r")
    assert len(df) == 2 and set(df["status"]) == {record["status"], "failed"}
    failed = df[df["status"] == "failed"].iloc[0]
    assert failed["error"] == "RuntimeError: out of memory"
    assert pd.isna(failed["m0"]) and failed["seed"] == 9
    ok = df[df["status"] != "failed"].iloc[0]
    assert ok["m0"] == record["energy"]["total"]["m0"]
    assert str(df["m0"].dtype) == "Int64" and str(df["lr"].dtype) == "float64"
    for field in RunConfig.__dataclass_fields__:
        assert field in df.columns
    out = to_parquet(tmp_path / "r", tmp_path / "runs.parquet")
    back = pd.read_parquet(out)
    assert list(back.columns) == list(df.columns)
    assert back["m0"].tolist() == df["m0"].tolist()
    assert [list(map(list, c)) for c in back["curve"]] == df["curve"].tolist()
    (tmp_path / "nothing").mkdir()
    with pytest.warns(UserWarning, match="no records at"):
        empty = load(tmp_path / "nothing")
    assert len(empty) == 0 and "m0" not in empty.columns and "lr" in empty.columns


# ------------------------------------------------------------------------------- config files


def test_sweep_file_toml(tmp_path: Path) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(
        "seeds = [0, 1]\n"
        "[run]\n"
        'dataset = "synthetic"\nbudget_epochs = 1.0\n'
        "[grid]\n"
        "n_hidden = [10, 20]\n"
        'rules = ["", "subnet:units=5", ["subnet:units=5", "top-k:fraction=0.1"]]\n'
    )
    configs = configs_from_file(path)
    assert len(configs) == 2 * 3 * 2
    assert configs[0] == RunConfig(dataset="synthetic", budget_epochs=1.0, n_hidden=10, seed=0)
    assert configs[1].seed == 1 and configs[2].rules == ("subnet:units=5",)
    assert configs[4].rules == ("subnet:units=5", "top-k:fraction=0.1")
    assert configs[-1].n_hidden == 20
    assert len({c.key() for c in configs}) == len(configs)


def test_run_file_json_and_flat(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"run": {"dataset": "synthetic", "lr": 0.1}}))
    assert configs_from_file(path) == [RunConfig(dataset="synthetic", lr=0.1)]
    path.write_text(json.dumps({"dataset": "synthetic", "n_hidden": 7}))
    assert configs_from_file(path) == [RunConfig(dataset="synthetic", n_hidden=7)]
    runs = {
        "run": {"dataset": "synthetic"},
        "runs": [{"n_hidden": 5}, {"n_hidden": 6, "lr": 0.1}],
        "seeds": [3],
    }
    assert [(c.n_hidden, c.lr, c.seed) for c in configs_from_mapping(runs)] == [
        (5, 0.01, 3),
        (6, 0.1, 3),
    ]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (
            "[run]\nn_hiden = 3\n",
            r"\[run\]: unknown config field\(s\) 'n_hiden'; allowed: .*n_hidden",
        ),
        ("[runn]\nx = 1\n", r"unknown table\(s\) 'runn'; allowed top-level keys: grid, run, runs"),
        ("[grid]\nlr = 0.1\n", r"\[grid\]: lr must be a non-empty list"),
        ("[grid]\nlr = []\n", r"\[grid\]: lr must be a non-empty list"),
        ("[grid]\nbogus = [1]\n", r"\[grid\]: unknown config field\(s\) 'bogus'"),
        ("seeds = [-1]\n[run]\n", r"seeds must be a non-empty list of integers >= 0"),
        ("seeds = [1]\n[grid]\nseed = [2]\n", "either as seeds or as grid.seed"),
        ("[grid]\nlr = [0.1, -1.0]\n", r"lr=-1.0\): lr must be a finite number > 0"),
        ("[run]\nrules = 'subnet:units=3'\n", "rules must be a list"),
        ("[run]\nalphas = ['x']\n", "alphas must be a list of numbers"),
        ("[run\n", "is not valid TOML"),
        ("", "empty"),
        ("run = 3\n", "run must be a table"),
    ],
)
def test_config_file_errors_name_the_field(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=match) as info:
        configs_from_file(path)
    assert str(path) in str(info.value)


def test_config_file_missing_or_huge(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        configs_from_file(tmp_path / "nope.toml")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        configs_from_file(tmp_path / "bad.json")
    # a key given twice: JSON's parsers keep the last one silently, TOML refuses it
    (tmp_path / "twice.json").write_text(
        '{"run": {"dataset": "synthetic", "n_hidden": 10}, "run": {"n_hidden": 20}}'
    )
    with pytest.raises(ConfigError, match="is not valid JSON: the key 'run' is given twice"):
        configs_from_file(tmp_path / "twice.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ConfigError, match="must hold a table"):
        configs_from_file(tmp_path / "list.json")
    grid = {"grid": {"lr": [0.1] * 1000, "n_hidden": list(range(1, 1001)), "seed": [0, 1]}}
    with pytest.raises(ConfigError, match="expands to 2000000 configs"):
        configs_from_mapping(grid)


# ------------------------------------------------------------------------------- sweeps


def test_sweep_resumes_and_deduplicates(tmp_path: Path) -> None:
    configs = [small(seed=s) for s in range(3)]
    seen: list[tuple[str, int, int]] = []

    def progress(rec: dict[str, Any], finished: int, total: int) -> None:
        seen.append((rec["key"], finished, total))

    # An equal config (explicit protocol default) and a repeated one run once.
    same = small(seed=0, sigma=0.01, check_set="validation")
    result = run_sweep([*configs, same, configs[1]], tmp_path, progress=progress)
    assert (result.total, result.done, result.skipped, result.failed) == (3, 3, 0, 0)
    assert result.duplicates == 2 and result.ok
    assert [f for _, f, _ in seen] == [1, 2, 3] and {t for _, _, t in seen} == {3}
    store = ResultStore(tmp_path)
    keys = [c.key() for c in configs]
    assert store.keys() == sorted(keys) and list(result.keys) == keys
    first = {k: store.read(k) for k in keys}

    store.path(keys[1]).unlink()
    seen.clear()
    again = run_sweep(configs, tmp_path, progress=progress)
    assert (again.done, again.skipped, again.failed) == (1, 2, 0)
    assert [k for k, _, _ in seen] == [keys[1]]
    # Untouched records are byte-for-byte the same; the re-run gives the same results.
    for k in (keys[0], keys[2]):
        assert store.read(k) == first[k]
    rerun = store.read(keys[1])
    for field in ("status", "samples", "curve", "energy", "minimal_energy"):
        assert rerun[field] == first[keys[1]][field]
    assert str(again).startswith("3 runs: 1 done")


class FailingExecutor:
    """An executor whose every task raises, as a crashing run would."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        future: cf.Future[Any] = cf.Future()
        future.set_exception(MemoryError("simulated: cannot allocate"))
        return future


def test_failed_runs_are_recorded_and_run_again(tmp_path: Path) -> None:
    configs = [small(seed=s) for s in (0, 1)]
    out = io.StringIO()
    result = run_sweep(configs, tmp_path, client=FailingExecutor(), stream=out)
    assert (result.done, result.failed, result.ok) == (0, 2, False)
    assert set(result.failed_keys) == {c.key() for c in configs}
    store = ResultStore(tmp_path)
    rec = store.read(configs[0].key())
    assert rec["status"] == "failed" and rec["error"] == "MemoryError: simulated: cannot allocate"
    assert "MemoryError" in rec["traceback"] and rec["config"]["seed"] == 0
    assert "failed    MemoryError: simulated" in out.getvalue()
    # Failed records are not final: the next sweep runs them.
    again = run_sweep(configs, tmp_path, progress=False)
    assert (again.done, again.skipped, again.failed) == (2, 0, 0)
    assert all(store.read(c.key())["status"] in FINAL_STATUSES for c in configs)


def test_a_failure_never_replaces_a_finished_record(tmp_path: Path) -> None:
    config = small(seed=3)
    store = ResultStore(tmp_path)

    class OtherSweepFinishesFirst(FailingExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
            store.write(fake(seed=3))  # a second driver on the same store
            return super().submit(fn, *args, **kwargs)

    result = run_sweep([config], store, client=OtherSweepFinishesFirst(), progress=False)
    assert (result.done, result.failed, result.skipped) == (0, 0, 1)
    assert store.read(config.key())["status"] == "converged"


def test_plain_progress_lines_when_not_a_terminal(tmp_path: Path) -> None:
    out = io.StringIO()
    run_sweep([small(seed=5), small(seed=5, lr=1e3)], tmp_path, stream=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("sweep: 2 runs, 0 stored already, 2 to run on this process")
    assert lines[1].startswith("[1/2] ") and lines[2].startswith("[2/2] ")
    assert any(" diverged " in line for line in lines[1:3])
    assert len(lines) == 3


def test_invalid_configs_fail_before_anything_runs(tmp_path: Path) -> None:
    from thrifty.rules.registry import RuleError

    with pytest.raises(RuleError, match=r"config 1 \(.*\): .*nosuchrule"):
        run_sweep([small(), small(rules=("nosuchrule:x=1",))], tmp_path, progress=False)
    with pytest.raises(ConfigError, match="config 0: n_hidden must be"):
        run_sweep([{"dataset": "synthetic", "n_hidden": 0}], tmp_path, progress=False)
    assert ResultStore(tmp_path).keys() == []
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        run_sweep([small()], tmp_path, workers=0, progress=False)


def test_a_finished_run_of_a_rule_no_longer_registered_is_skipped_not_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sweep of a rule of one's own, finished, runs again (skipping everything) in a
    process that has not registered the rule, from the API and the command line; a run
    not finished is still checked."""
    from thrifty.cli import main
    from thrifty.rules import registry
    from thrifty.rules.registry import RuleError

    monkeypatch.setitem(registry.REGISTRY, "only-here", registry.REGISTRY["backprop"])
    done = small(rules=("only-here",))
    assert run_sweep([done], tmp_path, progress=False).done == 1
    monkeypatch.delitem(registry.REGISTRY, "only-here")
    again = run_sweep([done], tmp_path, progress=False)
    assert (again.done, again.skipped) == (0, 1)
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        '[run]\ndataset = "synthetic"\nn_hidden = 12\nbudget_epochs = 1.0\n'
        'check_interval = 500\nrules = ["only-here"]\n'
    )
    assert main(["sweep", str(sweep), "--out", str(tmp_path)]) == 0
    assert "1 skipped" in capsys.readouterr().out
    with pytest.raises(RuleError, match=r"config 1 \(.*\): .*only-here"):
        run_sweep([done, small(rules=("only-here",), seed=1)], tmp_path, progress=False)


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    out = Terminal()
    result = run_sweep([small(seed=11), small(seed=12)], tmp_path, stream=out)
    text = out.getvalue()
    assert result.done == 2
    assert "sweep: 2 runs" in text and "2/2" in text
    assert "[1/2]" not in text  # a bar, not lines


def test_a_write_failure_stops_the_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(self: ResultStore, record: dict[str, Any]) -> Path:
        raise StoreError(f"cannot write record {str(self.path(record['key']))!r}: disk full")

    monkeypatch.setattr(ResultStore, "write", disk_full)
    with pytest.raises(StoreError, match="disk full"):
        run_sweep([small(seed=1), small(seed=2)], tmp_path, progress=False)
    with pytest.raises(ValueError, match="either client or scheduler"):
        run_sweep([small()], tmp_path, client=FailingExecutor(), scheduler="tcp://127.0.0.1:1")


class FutureCancelledError(Exception):
    """Named as Dask's: what a Dask future raises when it was cancelled."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason)
        if reason is not None:
            self.reason = reason


def _lost_client(status: str, reason: str | None, finish_first: bool = False) -> Any:
    """A stand-in for a ``distributed.Client`` whose futures are cancelled with
    ``reason`` (None: an older Dask that gives none), with the client's ``status`` as
    given ("running" while connected). ``finish_first``: the first run submitted runs
    here and succeeds."""
    submitted: list[int] = []

    def submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        kwargs.pop("pure", None)
        future: cf.Future[Any] = cf.Future()
        if finish_first and not submitted:
            future.set_result(fn(*args, **kwargs))
        else:
            future.set_exception(FutureCancelledError(reason))
        submitted.append(1)
        return future

    scheduler = type("Scheduler", (), {"address": "tcp://127.0.0.1:8786"})()
    client_type = type("Client", (), {"submit": submit, "status": status, "scheduler": scheduler})
    client_type.__module__ = "distributed.client"
    return client_type()


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("connecting", "scheduler-connection-lost"),
        ("running", "scheduler-connection-lost"),
        ("connecting", None),
    ],
)
def test_a_lost_scheduler_stops_the_sweep_without_failed_records(
    tmp_path: Path, status: str, reason: str | None
) -> None:
    """Dask cancels every future when the client loses its scheduler (saying so, or,
    in older versions, with the client no longer running; it may be running again by
    the time the sweep looks): the sweep stops with a SchedulerError that says how to
    resume, writes the runs that finished, and records nothing for the others."""
    from thrifty.experiments.executors import SchedulerError

    configs = [small(seed=s) for s in (0, 1)]
    client = _lost_client(status, reason, finish_first=True)
    with pytest.raises(SchedulerError, match="lost the connection to the Dask scheduler"):
        run_sweep(configs, tmp_path, client=client, progress=False)
    assert ResultStore(tmp_path).keys() == [configs[0].key()]


def test_a_cancellation_that_is_not_a_lost_scheduler_is_a_failed_run(tmp_path: Path) -> None:
    configs = [small(seed=s) for s in (0, 1)]
    for client in (_lost_client("running", None), _lost_client("connecting", "cancelled")):
        result = run_sweep(configs, tmp_path, client=client, progress=False)
        assert result.failed == 2


def test_the_sweep_header_counts_the_dask_workers() -> None:
    from thrifty.experiments.executors import _workers_text

    def client(n: int) -> Any:
        info = {"workers": {f"tcp://w{i}": {} for i in range(n)}}
        return type("Client", (), {"scheduler_info": lambda self: info})()

    assert _workers_text(client(0)) == " (no workers yet: the runs wait until one connects)"
    assert _workers_text(client(1)) == " (1 worker)"
    assert _workers_text(client(3)) == " (3 workers)"
    assert _workers_text(object()) == ""


def test_a_listener_that_never_answers_is_no_scheduler() -> None:
    """Dask's own timeout does not cover a port that accepts and stays silent (the
    dashboard's): the connection is given up after thrifty's."""
    import time

    from thrifty.experiments.executors import SchedulerError, _connect

    class Silent:
        def __init__(self, address: str, timeout: str) -> None:
            time.sleep(30)

    t0 = time.monotonic()
    with pytest.raises(SchedulerError, match=r"nothing answered as a scheduler within 0\.4 s"):
        _connect(Silent, "tcp://127.0.0.1:8787", 0.2)
    assert time.monotonic() - t0 < 2

    closed: list[bool] = []

    class Late:
        def __init__(self, address: str, timeout: str) -> None:
            time.sleep(0.8)

        def close(self) -> None:
            closed.append(True)

    with pytest.raises(SchedulerError, match="nothing answered"):
        _connect(Late, "tcp://127.0.0.1:8786", 0.2)
    deadline = time.monotonic() + 5
    while not closed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert closed == [True]  # made after the limit: closed, not left as Dask's default

    class Refused:
        def __init__(self, address: str, timeout: str) -> None:
            raise OSError("Timed out trying to connect")

    with pytest.raises(SchedulerError, match="Timed out trying to connect"):
        _connect(Refused, "tcp://127.0.0.1:1", 0.2)


def test_core_groups_split_the_cores_between_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    from thrifty.experiments.executors import core_groups

    assert core_groups(2, {0, 1, 2, 3}) == [{0, 1}, {2, 3}]
    assert core_groups(3, {4, 5, 6, 7}) == [{4}, {5}, {6}]
    assert core_groups(4, {0, 1}) is None  # more workers than cores: not pinned
    assert core_groups(1, {0, 1}) is None
    monkeypatch.setenv("THRIFTY_PIN_WORKERS", "0")
    assert core_groups(2, {0, 1}) is None


def _affinity(_: int) -> tuple[int, frozenset[int]]:
    import time

    time.sleep(0.3)  # keep this worker busy so the other takes the next task
    return os.getpid(), frozenset(os.sched_getaffinity(0))


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs at least 2 cores and sched_getaffinity",
)
def test_local_pool_pins_each_worker_to_its_own_cores() -> None:
    from thrifty.experiments.executors import LocalPool

    pool = LocalPool(2)
    try:
        seen = dict(f.result() for f in [pool.submit(_affinity, i) for i in range(4)])
    finally:
        pool.shutdown()
    assert len(seen) == 2
    first, second = seen.values()
    assert first and second and not first & second
    assert first | second <= set(os.sched_getaffinity(0))
