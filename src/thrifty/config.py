"""The configuration of one training run: a frozen, validated dataclass.

A run is a pure function of its :class:`RunConfig`; :meth:`RunConfig.key` hashes
the config into the name of its record.

Example
-------
>>> cfg = RunConfig(n_hidden=1000, seed=1, rules=("top-k:fraction=0.05",))
>>> cfg.resolved().check_interval
1000
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import numbers
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DATASETS = ("mnist", "fashion-mnist", "synthetic")
PROTOCOLS = ("default", "reference")
ACTIVATIONS = ("leaky_relu", "relu")
LOSSES = ("mse", "cross_entropy")
INPUTS = ("centred", "raw")
SAMPLINGS = ("epoch", "replacement")
DTYPES = ("float32", "float64")
CRITERIA = {"mnist": 0.95, "fashion-mnist": 0.85, "synthetic": 0.9}

MAX_HIDDEN = (2**31 - 1) // 785
"""Most hidden units: the synapses of an MNIST input layer must have int32 indices."""

PROTOCOL_DEFAULTS: dict[str, dict[str, Any]] = {
    # the default protocol of thrifty (docs/data.md)
    "default": {
        "sigma": 0.01,
        "check_interval": 1000,
        "sampling": "epoch",
        "check_set": "validation",
    },
    # The authors' own protocol: train on all 60 000, check on the test set.
    "reference": {
        "sigma": 0.03,
        "check_interval": 2000,
        "sampling": "replacement",
        "check_set": "test",
    },
}


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and what is allowed."""


SCHEMA = 1
"""Version of the record schema; part of every run key."""


def _number(name: str, value: Any) -> float:
    """``value`` (any real number but a bool: NumPy's included) as a float, or a
    ConfigError naming ``name``."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool | np.bool_):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise ConfigError(f"{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return number


SMALLEST_NORMAL = {"float32": 2.0**-126, "float64": 2.0**-1022}
"""The smallest normal number of each float type: the least learning rate accepted
(XLA on a CPU flushes smaller results to zero)."""


def whole(value: Any) -> Any:
    """``value`` as a Python int if it is an integer of any kind but a bool (NumPy's
    included), else unchanged (for the caller to refuse)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
        return int(value)
    return value


def _tidy_spec(text: str) -> str:
    """A rule or synapse string without the spaces and empty items its parser ignores
    (``" top-k: fraction = 0.1,"`` → ``"top-k:fraction=0.1"``), so that spellings the
    parser reads alike key one run. Values stay as written (``0.10`` is not ``0.1``)."""
    name, _, rest = text.strip().partition(":")
    items = []
    for item in (i.strip() for i in rest.split(",")):
        key, eq, value = item.partition("=")
        if item:
            items.append(f"{key.strip()}={value.strip()}" if eq else item)
    return name.strip() + (":" + ",".join(items) if items else "")


def _positive(name: str, value: Any) -> float:
    number = _number(name, value)
    if number <= 0:
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run.

    Attributes
    ----------
    dataset : {"mnist", "fashion-mnist", "synthetic"}
    protocol : {"default", "reference"}
        Data preprocessing and training protocol (docs/data.md); ``None`` fields below
        take the protocol's value.
    n_hidden : int
        Hidden units N ≥ 1.
    lr : float
        Learning rate η > 0 (both layers).
    sigma : float or None
        Standard deviation of the initial weights (0.01 default protocol, 0.03 reference).
    seed : int ≥ 0
        Determines initial weights, sample order and the rules' random draws.
    rules : tuple of str
        Plasticity rules, e.g. ``("subnet:units=100", "top-k:fraction=0.05")``;
        empty for plain backprop.
    synapses : str
        Synapse model: ``"plain"`` or e.g. ``"caching:threshold=0.1"``.
    activation : {"leaky_relu", "relu"}
    loss : {"mse", "cross_entropy"}
    inputs : {"centred", "raw"}
        ``raw``: pixels in [0, 1], no mean subtraction and no noise (Fig 6).
    budget_epochs : float > 0
        Runs that have not met the criterion after this many epochs stop as "budget"
        (at the first check at or after it: the budget is rounded up to a whole number
        of check intervals, and must hold at least one).
    check_interval : int or None
        Samples between two accuracy checks.
    sampling : {"epoch", "replacement"} or None
    check_set : {"validation", "test"} or None
    criterion : float in (0, 1] or None
        Accuracy that ends training (0.95 MNIST, 0.85 Fashion-MNIST).
    dtype : {"float32", "float64"}
    alphas : tuple of float
        Extra exponents α of the M_α meter.
    n_train : int or None
        Use only the first ``n_train`` training images (tests, quick looks).
    simpson : bool
        Record the inverse Simpson index of where updates land, per check
        interval (costs one extra pass over the weights per sample).
    """

    dataset: str = "mnist"
    protocol: str = "default"
    n_hidden: int = 100
    lr: float = 0.01
    sigma: float | None = None
    seed: int = 0
    rules: tuple[str, ...] = ()
    synapses: str = "plain"
    activation: str = "leaky_relu"
    loss: str = "mse"
    inputs: str = "centred"
    budget_epochs: float = 5.0
    check_interval: int | None = None
    sampling: str | None = None
    check_set: str | None = None
    criterion: float | None = None
    dtype: str = "float32"
    alphas: tuple[float, ...] = field(default_factory=tuple)
    n_train: int | None = None
    simpson: bool = False

    def __post_init__(self) -> None:
        for name in ("n_hidden", "seed", "check_interval", "n_train"):
            object.__setattr__(self, name, whole(getattr(self, name)))
        _choice("dataset", self.dataset, DATASETS)
        _choice("protocol", self.protocol, PROTOCOLS)
        if (
            not isinstance(self.n_hidden, int)
            or isinstance(self.n_hidden, bool)
            or not 1 <= self.n_hidden <= MAX_HIDDEN
        ):
            raise ConfigError(
                f"n_hidden must be an integer in [1, {MAX_HIDDEN}], got {self.n_hidden!r}"
            )
        object.__setattr__(self, "lr", _positive("lr", self.lr))
        if self.sigma is not None:
            object.__setattr__(self, "sigma", _positive("sigma", self.sigma))
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not isinstance(self.rules, list | tuple) or not all(
            isinstance(r, str) for r in self.rules
        ):
            raise ConfigError(f"rules must be a list of rule strings, got {self.rules!r}")
        object.__setattr__(self, "rules", tuple(_tidy_spec(r) for r in self.rules))
        if not isinstance(self.alphas, list | tuple):
            raise ConfigError(f"alphas must be a list of numbers > 0, got {self.alphas!r}")
        alphas = tuple(_positive("alphas", a) for a in self.alphas)
        repeated = [a for i, a in enumerate(alphas) if a in alphas[:i]]
        if repeated:  # one meter per α: a repeated α would be priced twice into it
            raise ConfigError(
                f"alphas must differ from one another; {repeated[0]!r} is given more than once"
            )
        object.__setattr__(self, "alphas", alphas)
        if not isinstance(self.synapses, str):
            raise ConfigError(f"synapses must be a string such as 'plain', got {self.synapses!r}")
        object.__setattr__(self, "synapses", _tidy_spec(self.synapses))
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("loss", self.loss, LOSSES)
        _choice("inputs", self.inputs, INPUTS)
        object.__setattr__(self, "budget_epochs", _positive("budget_epochs", self.budget_epochs))
        if self.check_interval is not None and (
            not isinstance(self.check_interval, int)
            or isinstance(self.check_interval, bool)
            or self.check_interval < 1
        ):
            raise ConfigError(
                f"check_interval must be an integer >= 1, got {self.check_interval!r}"
            )
        if self.sampling is not None:
            _choice("sampling", self.sampling, SAMPLINGS)
        if self.check_set is not None:
            _choice("check_set", self.check_set, ("validation", "test"))
        if self.criterion is not None:
            object.__setattr__(self, "criterion", _positive("criterion", self.criterion))
            if self.criterion > 1:
                raise ConfigError(
                    f"criterion must be an accuracy in (0, 1], got {self.criterion!r}"
                )
        _choice("dtype", self.dtype, DTYPES)
        smallest = SMALLEST_NORMAL[self.dtype]
        if self.lr < smallest:
            raise ConfigError(
                f"lr must be at least the smallest normal {self.dtype} number "
                f"({smallest:.3g}), got {self.lr!r}: smaller updates are flushed to zero"
            )
        if self.n_train is not None and (
            not isinstance(self.n_train, int) or isinstance(self.n_train, bool) or self.n_train < 1
        ):
            raise ConfigError(f"n_train must be an integer >= 1, got {self.n_train!r}")
        if isinstance(self.simpson, np.bool_):
            object.__setattr__(self, "simpson", bool(self.simpson))
        if not isinstance(self.simpson, bool):
            raise ConfigError(f"simpson must be true or false, got {self.simpson!r}")

    def resolved(self) -> RunConfig:
        """The same config with every ``None`` replaced by its protocol's value."""
        defaults = PROTOCOL_DEFAULTS[self.protocol]
        changes: dict[str, Any] = {}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                changes[name] = value
        if self.criterion is None:
            changes["criterion"] = CRITERIA[self.dataset]
        if not changes:
            return self
        cached = self.__dict__.get("_resolved")
        if cached is None:
            cached = dataclasses.replace(self, **changes)
            self.__dict__["_resolved"] = cached  # frozen: kept beside the fields
        return cached  # type: ignore[no-any-return]

    def _fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __getstate__(self) -> dict[str, Any]:
        # the fields alone: a config sent to another process computes its own key there
        return self._fields()

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (lists for tuples)."""
        out = self._fields()
        out["rules"] = list(self.rules)
        out["alphas"] = list(self.alphas)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build from a mapping; unknown fields are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict):
            raise ConfigError(f"a run config must be a table of fields, got {type(data).__name__}")
        unknown = sorted(map(str, set(data) - names))
        if unknown:
            raise ConfigError(
                f"unknown config field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}"
            )
        data = dict(data)
        for name in ("rules", "alphas"):
            if name in data and isinstance(data[name], list):
                data[name] = tuple(data[name])
        return cls(**data)

    def setting_key(self) -> str:
        """:meth:`key` of this config at seed 0: equal for configs that differ in their
        seed alone."""
        return dataclasses.replace(self, seed=0).key()

    def key(self) -> str:
        """Stable 16-hex-digit name of this run.

        SHA-256 of the schema version and the fields of the resolved config that
        differ from their defaults, so a field added later (with a default that
        keeps the old behaviour) does not rename existing records. Numbers are
        normalised (``lr=1`` and ``lr=1.0`` name the same run).
        """
        key = self.__dict__.get("_key")
        if key is None:
            key = _key_of(self.resolved().to_dict())
            self.__dict__["_key"] = key
        return key  # type: ignore[no-any-return]

    def keys_as_stored(self, stored: Mapping[str, Any]) -> set[str]:
        """The keys a record of this config may bear, its config stored as ``stored``
        (a :meth:`to_dict`): :meth:`key`, and the key of its rule and synapse strings
        as written there, which runs recorded before those strings were tidied
        (spaces and empty items dropped) bear."""
        if self.rules == tuple(stored.get("rules", ())) and self.synapses == stored.get(
            "synapses", self.synapses
        ):
            return {self.key()}  # the strings were stored tidy
        resolved = self.resolved().to_dict()
        for name in ("rules", "synapses"):
            if name in stored:
                resolved[name] = list(stored[name]) if name == "rules" else stored[name]
        return {self.key(), _key_of(resolved)}


def _key_of(resolved: Mapping[str, Any]) -> str:
    """:meth:`RunConfig.key` of a resolved config's :meth:`~RunConfig.to_dict`: SHA-256
    of the schema version and the fields that differ from their defaults."""
    defaults = _default_fields()
    fields = {k: v for k, v in resolved.items() if v != defaults[k]}
    text = json.dumps({"schema": SCHEMA, **fields}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.cache
def _default_fields() -> Mapping[str, Any]:
    """:meth:`RunConfig.to_dict` of the default config, read only."""
    return types.MappingProxyType(RunConfig().to_dict())
