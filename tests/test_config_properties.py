"""Property tests: any input is either a valid config or a ConfigError/RuleError naming the field.

Random and malformed mappings go to :meth:`RunConfig.from_dict`, random files to
:func:`thrifty.experiments.configs_from_file`, and accepted configs to
:func:`thrifty.train.check_config` (which parses the rule and synapse strings). No other
exception type may come out, and the message must name what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
import string
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thrifty.config import ConfigError, RunConfig
from thrifty.experiments.configfile import TOP_LEVEL_KEYS, configs_from_file, configs_from_mapping
from thrifty.rules.registry import RuleError
from thrifty.train import check_config

FIELDS = [f.name for f in dataclasses.fields(RunConfig)]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values of JSON or TOML files: scalars, lists and tables, nested a little.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=12)
)
junk = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
words = st.text(alphabet=string.ascii_lowercase + "_-", min_size=3, max_size=12)

RULES = [
    "subnet:units=5",
    "subnet:units=0",
    "subnet:units=x",
    "top-k:fraction=0.1",
    "top-k:fraction=0.1,per=neuron",
    "top-k:fraction=2",
    "top-k:per=nowhere,fraction=0.1",
    "neuron-select:fraction=0.5,by=error",
    "synapse-mask:hidden=0.5,output=1",
    "neuron-mask:fraction=0.3",
    "frozen-input",
    "lazy",
    "backprop",
    "lazy:x=1",
    "nosuchrule",
    "subnet",
    "subnet:units",
    ":",
    "",
]
SYNAPSES = [
    "plain",
    "caching:threshold=0.1",
    "caching:threshold=0.1,per=neuron",
    "caching:threshold=-1",
    "caching:tau=x",
    "caching",
    "plain:x=1",
    "bogus",
]
rule_strings = st.sampled_from(RULES) | st.text(max_size=20)

# Per field: mostly plausible values (valid or just out of range), sometimes anything.
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "dataset": st.sampled_from(["synthetic", "mnist", "fashion-mnist", "cifar", ""]),
    "protocol": st.sampled_from(["default", "reference", "other"]),
    "n_hidden": st.integers(-3, 2000),
    "lr": st.floats(-1, 10) | st.integers(-2, 3),
    "sigma": st.none() | st.floats(-1, 1),
    "seed": st.integers(-2, 2**40),
    "rules": st.lists(rule_strings, max_size=3),
    "synapses": st.sampled_from(SYNAPSES) | st.text(max_size=20),
    "activation": st.sampled_from(["leaky_relu", "relu", "tanh"]),
    "loss": st.sampled_from(["mse", "cross_entropy", "hinge"]),
    "inputs": st.sampled_from(["centred", "raw", "centered"]),
    "budget_epochs": st.floats(-1, 10) | st.integers(-1, 10),
    "check_interval": st.none() | st.integers(-2, 5000) | st.floats(0, 10),
    "sampling": st.none() | st.sampled_from(["epoch", "replacement", "batch"]),
    "check_set": st.none() | st.sampled_from(["validation", "test", "train"]),
    "criterion": st.none() | st.floats(-0.5, 1.5),
    "dtype": st.sampled_from(["float32", "float64", "int8"]),
    "alphas": st.lists(st.floats(-1, 3) | st.integers(-1, 3), max_size=3),
    "n_train": st.none() | st.integers(-1, 5000),
    "simpson": st.booleans() | st.integers(0, 1),
}


@st.composite
def field_tables(draw: st.DrawFn, *, any_values: bool) -> dict[str, Any]:
    """A table of config fields: plausible values, junk values, and unknown keys."""
    out: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=8, unique=True)):
        strategy = PLAUSIBLE.get(name, junk)
        out[name] = draw(strategy | junk if any_values else strategy)
    if draw(st.integers(0, 9)) == 0:
        out[draw(words)] = draw(junk)
    return out


def assert_names_field(exc: Exception, names: list[str]) -> None:
    """The message names one of ``names`` (or a rule / synapse model, for RuleError)."""
    text = str(exc)
    # rule strings are named "rule 'x'", synapse-model strings "synapse model 'x'"
    hints = [*names, "rule", "synapse model", "seeds", "grid"]
    assert any(h in text for h in hints if h), f"{type(exc).__name__} names no field: {text}"


def check_accepted(config: RunConfig) -> None:
    """An accepted config round-trips through JSON, and check_config names any problem."""
    again = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.key() == config.key()
    try:
        check_config(config)
    except (ConfigError, RuleError) as exc:
        assert_names_field(exc, FIELDS)


@SETTINGS
@given(field_tables(any_values=False))
def test_from_dict_accepts_or_names_the_field(table: dict[str, Any]) -> None:
    try:
        config = RunConfig.from_dict(table)
    except ConfigError as exc:
        assert_names_field(exc, list(table))
        return
    check_accepted(config)


@pytest.mark.parametrize(
    "table",
    [
        {"rules": 5},
        {"rules": None},
        {"alphas": "ab"},
        {"alphas": [None]},
        {"lr": 10**400},
        {1: 2},
    ],
    ids=["rules-int", "rules-none", "alphas-str", "alphas-none", "lr-huge", "key-int"],
)
def test_from_dict_rejects_malformed_shapes(table: dict[Any, Any]) -> None:
    with pytest.raises(ConfigError):
        RunConfig.from_dict(table)


@st.composite
def files(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly well-shaped sweep files with junk inside, sometimes junk at the top."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.dictionaries(st.text(max_size=8), junk, max_size=4))
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["run"] = draw(field_tables(any_values=True) | junk)
    if draw(st.booleans()):
        grid = {}
        for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
            values = st.lists(PLAUSIBLE.get(name, junk) | junk | rule_strings, max_size=3)
            grid[name] = draw(values | junk)
        out["grid"] = grid
    if draw(st.booleans()):
        out["seeds"] = draw(st.lists(st.integers(-1, 5), max_size=3) | junk)
    if draw(st.integers(0, 4)) == 0:
        out["runs"] = draw(st.lists(field_tables(any_values=True), max_size=2) | junk)
    return out


@SETTINGS
@given(files())
def test_configs_from_file_accepts_or_names_the_field(data: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sweep.json"
        path.write_text(json.dumps(data))
        try:
            configs = configs_from_file(path)
        except ConfigError as exc:
            assert str(path) in str(exc)
            names = [*FIELDS, *TOP_LEVEL_KEYS, *data, *_keys_of(data.get("run"))]
            assert_names_field(exc, names)
            return
    assert configs == configs_from_mapping(data)
    for config in configs[:3]:
        check_accepted(config)


def _keys_of(table: Any) -> list[str]:
    return [str(k) for k in table] if isinstance(table, dict) else []


@SETTINGS
@given(st.text(max_size=200))
def test_any_toml_text_is_a_config_or_a_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sweep.toml"
        path.write_text(text, encoding="utf-8")
        try:
            configs = configs_from_file(path)
        except ConfigError as exc:
            assert str(path) in str(exc)
            return
    assert all(isinstance(c, RunConfig) for c in configs)


def test_toml_numbers_that_overflow_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text(f"[run]\nlr = {10**400}\n")
    with pytest.raises(ConfigError, match="lr must be a finite number"):
        configs_from_file(path)
    path.write_text("[run]\nlr = inf\n")
    with pytest.raises(ConfigError, match="lr must be a finite number"):
        configs_from_file(path)


def test_record_names_do_not_change() -> None:
    """Keys name stored records: a sweep run again must find what an earlier one wrote.

    The values were written by the first version that stored records under these keys;
    a change here renames every record of every existing results directory.
    """
    assert RunConfig().key() == "41749a9d75930399"
    topk = RunConfig(dataset="fashion-mnist", n_hidden=1000, rules=("top-k:fraction=0.05",), seed=3)
    assert topk.key() == "942297d93a692476"
    caching = RunConfig(
        lr=1, synapses="caching:threshold=0.001", alphas=(0.5,), protocol="reference"
    )
    assert caching.key() == "f6b5b5c0e4a4c68c"
    # the resolved config (as stored in a record) has the same name
    assert caching.resolved().key() == caching.key()
    assert RunConfig.from_dict(caching.resolved().to_dict()).key() == caching.key()


def test_derived_configs_have_their_own_keys_and_resolved_forms() -> None:
    """A config made from another (``dataclasses.replace``, ``resolved``) answers for
    itself, however often the first was asked before."""
    base = RunConfig(dataset="synthetic", n_hidden=10)
    for _ in range(2):
        assert base.resolved().criterion is not None and base.criterion is None
        first = base.key()
    other = dataclasses.replace(base, seed=1)
    assert other.key() != first and base.key() == first
    assert other.resolved().seed == 1 and base.resolved().seed == 0
    resolved = base.resolved()
    assert resolved.resolved() is resolved
    assert base.to_dict()["criterion"] is None and resolved.to_dict()["criterion"] is not None
    assert set(base.to_dict()) == set(FIELDS)
    assert json.loads(json.dumps(base.to_dict())) == base.to_dict()


def test_a_pickled_config_carries_its_fields_only() -> None:
    """Configs sent to worker processes carry no computed key: each process names a
    run from its fields (a worker of another version computes its own)."""
    import pickle

    config = RunConfig(dataset="synthetic", n_hidden=12, rules=("lazy",))
    key = config.key()
    assert config.resolved() is config.resolved()
    copy = pickle.loads(pickle.dumps(config))
    assert copy == config and not {"_key", "_resolved"} & set(vars(copy))
    assert copy.key() == key and copy.resolved() == config.resolved()
