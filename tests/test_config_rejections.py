"""RunConfig rejects a bad value of each validated field with a ConfigError naming it.

``n_hidden``, ``lr``, ``dataset`` and unknown fields have their own tests in
``test_train.py``, malformed ``rules`` and ``alphas`` lists in ``test_experiments.py``;
here is one bad value (two where a range has two ends, and booleans where an integer
is asked for) for every other field that :meth:`RunConfig.__post_init__` checks. Each
message starts with the field's name and shows the value given. A config with every one
of those fields at a good non-default value is accepted, so the rejections are not
those of a config that rejects everything.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from thrifty.config import ConfigError, RunConfig
from thrifty.train import check_config

BAD: list[tuple[str, Any]] = [
    ("protocol", "authors"),
    ("sigma", 0.0),
    ("sigma", math.nan),
    ("seed", -1),
    ("seed", 1.5),
    ("seed", True),
    ("synapses", 3),
    ("activation", "tanh"),
    ("loss", "hinge"),
    ("inputs", "centered"),
    ("budget_epochs", 0),
    ("budget_epochs", math.inf),
    ("check_interval", 0),
    ("check_interval", 10.0),
    ("check_interval", True),
    ("sampling", "batch"),
    ("check_set", "train"),
    ("criterion", 0.0),
    ("criterion", -0.5),
    ("criterion", 1.01),
    ("criterion", "0.9"),
    ("dtype", "float16"),
    ("n_train", 0),
    ("n_train", 2.5),
    ("n_train", False),
    ("simpson", 1),
    ("simpson", "yes"),
    ("alphas", (1.0, -2.0)),
    ("alphas", (0.5, 0.5)),
    ("alphas", (2.0, 1, 1.0)),
]

GOOD: dict[str, Any] = {
    "protocol": "reference",
    "sigma": 0.05,
    "seed": 7,
    "synapses": "caching:threshold=0.1",
    "activation": "relu",
    "loss": "cross_entropy",
    "inputs": "raw",
    "budget_epochs": 0.5,
    "check_interval": 50,
    "sampling": "epoch",
    "check_set": "validation",
    "criterion": 1.0,
    "dtype": "float64",
    "n_train": 100,
    "simpson": True,
    "alphas": (0.5, 2.0),
}


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v!r}" for n, v in BAD])
def test_bad_value_is_rejected_naming_the_field(name: str, value: Any) -> None:
    """``RunConfig(name=value)`` and ``RunConfig.from_dict`` raise a ConfigError whose
    message begins with the field's name and contains the value given (for alphas,
    the bad element)."""
    shown = repr(value[-1] if name == "alphas" else value)
    for make in (lambda: RunConfig(**{name: value}), lambda: RunConfig.from_dict({name: value})):
        with pytest.raises(ConfigError, match=rf"^{name} must ") as info:
            make()
        assert shown in str(info.value)


@pytest.mark.parametrize("name", sorted({n for n, _ in BAD}))
def test_every_rejected_field_has_a_good_value_here(name: str) -> None:
    """Each field tested above alone at its good value is accepted and kept."""
    config = RunConfig(**{name: GOOD[name]})
    assert getattr(config, name) == GOOD[name]


def test_a_config_of_good_non_default_values_is_accepted() -> None:
    """All those fields at once, each at a value other than its default, make a config
    that keeps them, survives ``check_config`` (rules, synapse model, x64, budget)
    and a round trip through ``to_dict`` / ``from_dict``."""
    defaults = RunConfig()
    assert all(getattr(defaults, name) != value for name, value in GOOD.items())
    config = RunConfig(**GOOD)
    for name, value in GOOD.items():
        assert getattr(config, name) == value, name
    assert check_config(config) == config.resolved()
    assert RunConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("name", "value"),
    [("criterion", 1), ("check_interval", 1), ("n_train", 1), ("seed", 0), ("sigma", 1e-12)],
)
def test_edges_of_the_ranges_are_accepted(name: str, value: Any) -> None:
    """The closed ends of the ranges (criterion 1, intervals and sizes 1, seed 0) and
    tiny positive numbers are valid."""
    assert getattr(RunConfig(**{name: value}), name) == value


def test_numpy_numbers_are_taken_as_the_python_numbers_they_hold() -> None:
    """A size or seed from a NumPy array (np.int64) and a rate in any NumPy float type
    are accepted, stored as Python numbers, and key the run as those numbers do; a NumPy
    bool is refused where an integer or number is asked for, as a Python bool is."""
    import numpy as np

    given = RunConfig(
        n_hidden=np.int64(10),
        seed=np.int32(3),
        check_interval=np.uint16(50),
        n_train=np.int64(100),
        lr=np.float32(0.5),
        budget_epochs=np.float64(0.5),
        alphas=(np.float32(2.0),),
    )
    plain = RunConfig(
        n_hidden=10,
        seed=3,
        check_interval=50,
        n_train=100,
        lr=0.5,
        budget_epochs=0.5,
        alphas=(2.0,),
    )
    assert given == plain and given.key() == plain.key()
    assert all(type(getattr(given, f)) is int for f in ("n_hidden", "seed", "check_interval"))
    assert type(given.lr) is float
    assert RunConfig(simpson=np.bool_(True)).simpson is True
    for name in ("n_hidden", "lr", "seed"):
        with pytest.raises(ConfigError, match=f"^{name} must be"):
            RunConfig(**{name: np.bool_(True)})


def test_rule_strings_the_parser_reads_alike_key_one_run() -> None:
    """Spaces and empty items, which the rule parser ignores, are dropped from rule and
    synapse strings, so a resumed sweep finds its runs; values stay as written."""
    spellings = [" top-k:fraction=0.1", "top-k: fraction = 0.1", "top-k:fraction=0.1,,"]
    keys = {RunConfig(rules=(r,)).key() for r in spellings}
    assert keys == {RunConfig(rules=("top-k:fraction=0.1",)).key()}
    assert RunConfig(rules=("top-k:fraction=0.10",)).key() not in keys
    assert RunConfig(rules=("backprop:",)).rules == ("backprop",)
    tidy = RunConfig(synapses=" caching : threshold = 0.001 ,")
    assert tidy.synapses == "caching:threshold=0.001"
    assert tidy.key() == RunConfig(synapses="caching:threshold=0.001").key()
