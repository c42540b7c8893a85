"""One registry from rule names to factories, and the ``name:key=value,...`` syntax.

A rule string names a registered factory and its keyword arguments::

    subnet:units=100
    top-k:per=layer,fraction=0.05
    lazy

Numeric arguments may be given later as traced JAX values (so runs that differ
only in numbers can be vmapped): :func:`spec_numbers` lists them and
:func:`build` accepts replacements.
"""

from __future__ import annotations

import inspect
import itertools
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from thrifty.rules.base import LayerSelection, Rule, chain


class RuleError(ValueError):
    """A rule string or its parameters are invalid; the message says what is allowed."""


@dataclass(frozen=True)
class Param:
    """One parameter of a registered rule.

    Attributes
    ----------
    name : str
    kind : {"float", "int", "str"}
        Numbers (float, int) may be traced; strings are structure.
    default : Any
        ``inspect.Parameter.empty`` when required.
    choices : tuple of str or None
        Allowed values of a string parameter.
    """

    name: str
    kind: str
    default: Any
    choices: tuple[str, ...] | None = None

    @property
    def required(self) -> bool:
        """True when the parameter has no default."""
        return self.default is inspect.Parameter.empty


LayerShapes = tuple[tuple[int, int], ...]
"""Shapes ``(n_post, n_pre + 1)`` of the weights of each layer, input layer first."""

CompileArgs = Callable[
    [dict[str, Any], LayerShapes], Mapping[str, Any] | tuple[tuple[str, Any], ...]
]
"""``compile_args(params, shapes) -> {name: value}`` (or ``((name, value), ...)``): see
:class:`Entry`."""


@dataclass(frozen=True)
class Entry:
    """A registered rule: factory, parameters, one-line summary and checker.

    ``compile_args(params, shapes)``, when given, returns keyword arguments of the
    factory that the library sets, not the rule string (hashable values, e.g. the
    static size of an array in the rule's state), from the rule's parameters as
    numbers and the network's layer shapes. They become part of the compile key
    (:func:`spec_structure`), so runs whose numbers need different ones compile apart.
    """

    name: str
    factory: Callable[..., Rule]
    params: tuple[Param, ...]
    summary: str
    check: Callable[[dict[str, Any], int], None] | None = None
    compile_args: CompileArgs | None = None
    serial: int = 0
    """Order of registration in this process: part of the compile key (see
    :func:`registrations`), so a name registered again compiles anew."""


REGISTRY: dict[str, Entry] = {}

_SERIALS = itertools.count(1)

RESERVED = ("plain",)
"""Rule names that mean plain backprop in records and figures (beside the built-in
rule ``backprop``): no rule may take them."""


def register(
    name: str,
    *,
    registry: dict[str, Entry] | None = None,
    choices: Mapping[str, tuple[str, ...]] | None = None,
    check: Callable[[dict[str, Any], int], None] | None = None,
    compile_args: CompileArgs | None = None,
) -> Callable[[Callable[..., Rule]], Callable[..., Rule]]:
    """Decorator: register a keyword-only rule factory under ``name``.

    Parameter kinds come from the annotations (``float``, ``int``, ``str``);
    ``check(params, n_hidden)`` may reject values that depend on the network;
    ``compile_args`` sets library arguments (see :class:`Entry`).
    """

    target = REGISTRY if registry is None else registry
    what = "rule" if target is REGISTRY else "synapse model"
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise RuleError(
            f"a {what} name must be letters, digits, '-' and '_', starting with a letter "
            f"(so that a {what} string can name it), got {name!r}"
        )
    if target is REGISTRY and name in RESERVED:
        raise RuleError(f"{name!r} means plain backprop in records and figures: not a rule name")

    def deco(factory: Callable[..., Rule]) -> Callable[..., Rule]:
        params = []
        for p in inspect.signature(factory).parameters.values():
            ann = (
                p.annotation
                if isinstance(p.annotation, str)
                else ""
                if p.annotation is inspect.Parameter.empty
                else getattr(p.annotation, "__name__", repr(p.annotation))
            )
            if "tuple" in ann:  # set by the library (e.g. meters), not from a rule string
                continue
            kind = ann.strip()
            if kind not in ("float", "int", "str"):
                raise RuleError(
                    f"{what} {name!r}: parameter {p.name!r} must be annotated float, int or "
                    f"str (what a {what} string can give), got {ann or 'no annotation'}"
                )
            params.append(Param(p.name, kind, p.default, (choices or {}).get(p.name)))
        _check_choices(what, name, params, choices or {})
        doc = [" ".join((factory.__doc__ or "").strip().split("\n\n")[0].split())]
        summary = doc[0] if doc else ""
        before = target.get(name)
        if before is not None and _builtin(before.factory) and not _builtin(factory):
            # records and figures know the built-in rules by their names
            raise RuleError(
                f"{what} {name!r} is built into thrifty; register yours under another name"
            )
        if before is not None and before.factory is not factory:
            # Compiled programs know a rule by its registration (see registrations()),
            # so runs from now on use the new one; a warning, as a name may be taken by
            # mistake.
            warnings.warn(
                f"{what} {name!r} registered again: {_where(factory)} replaces "
                f"{_where(before.factory)}",
                stacklevel=2,
            )
        target[name] = Entry(
            name, factory, tuple(params), summary, check, compile_args, next(_SERIALS)
        )
        return factory

    return deco


NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_\-]*"
"""What a registered name may be: what a rule or synapse-model string can name."""


def _builtin(factory: Callable[..., Any]) -> bool:
    return str(getattr(factory, "__module__", "")).startswith("thrifty.")


def _where(factory: Callable[..., Any]) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', factory)}"


def registrations(
    specs: Sequence[str | RuleSpec], registry: dict[str, Entry] | None = None
) -> tuple[int, ...]:
    """The registration serials of a chain of rules (or of one synapse model), in order.

    Part of the compile key of a training chunk, beside :func:`spec_structure`: a rule
    registered again under the same name (a redefinition in a notebook) is a
    different program, and runs after it compile anew instead of reusing the old one.
    """
    registry = REGISTRY if registry is None else registry
    return tuple(registry[parse(s, registry).name].serial for s in specs)


@dataclass(frozen=True)
class RuleSpec:
    """A parsed rule string: the registry name and its keyword arguments."""

    name: str
    kwargs: tuple[tuple[str, Any], ...]

    def __str__(self) -> str:
        if not self.kwargs:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.kwargs)


def _check_choices(
    what: str, name: str, params: list[Param], choices: Mapping[str, tuple[str, ...]]
) -> None:
    """Refuse ``choices`` for a parameter that is not a str parameter of the factory,
    and a default outside its choices."""
    by_name = {p.name: p for p in params}
    for key, allowed in choices.items():
        param = by_name.get(key)
        if param is None or param.kind != "str":
            raise RuleError(
                f"{what} {name!r}: choices given for {key!r}, which is not a str parameter "
                f"of the factory (its str parameters: "
                f"{', '.join(p.name for p in params if p.kind == 'str') or 'none'})"
            )
        if param.default is not inspect.Parameter.empty and param.default not in allowed:
            raise RuleError(
                f"{what} {name!r}: the default of {key!r}, {param.default!r}, is not one of "
                f"its choices ({', '.join(allowed)})"
            )


def _convert(entry: Entry, param: Param, raw: Any, kind: str = "rule") -> Any:
    where = f"{kind} {entry.name!r}, parameter {param.name!r}"
    if param.kind == "str":
        value = str(raw)
        if param.choices is not None and value not in param.choices:
            raise RuleError(f"{where} must be one of {', '.join(param.choices)}; got {value!r}")
        return value
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise RuleError(f"{where} must be a number, got {raw!r}") from None
    if param.kind == "int":
        if not math.isfinite(number) or number != int(number):
            raise RuleError(f"{where} must be an integer, got {raw!r}")
        if not -(2**31) <= number < 2**31:  # it reaches the rule as an int32
            raise RuleError(f"{where} must be an integer within ±2**31, got {raw!r}")
        return int(number)
    return number


def parse(text: str | RuleSpec, registry: dict[str, Entry] | None = None) -> RuleSpec:
    """Parse ``"name:key=value,key=value"`` into a validated :class:`RuleSpec`.

    Raises
    ------
    RuleError
        Unknown rule (the message lists the known ones), unknown or missing
        parameter (the message lists the rule's parameters), bad value.
    """
    registry = REGISTRY if registry is None else registry
    kind = "rule" if registry is REGISTRY else "synapse model"
    if isinstance(text, RuleSpec):
        return text
    if not isinstance(text, str) or not text.strip():
        example = "subnet:units=100" if kind == "rule" else "caching:threshold=0.001"
        raise RuleError(f"a {kind} must be a non-empty string such as {example!r}, got {text!r}")
    name, _, rest = text.strip().partition(":")
    name = name.strip()
    if name not in registry:
        hint = (
            " (a rule of your own is known once the module that registers it is imported, "
            "in every process that runs it: see docs/rules.md)"
            if kind == "rule"
            else ""
        )
        raise RuleError(f"unknown {kind} {name!r}; known: {', '.join(sorted(registry))}{hint}")
    entry = registry[name]
    by_name = {p.name: p for p in entry.params}
    given: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise RuleError(f"{kind} {name!r}: expected key=value, got {item!r}")
        if key not in by_name:
            allowed = ", ".join(by_name) or "none"
            raise RuleError(f"{kind} {name!r} has no parameter {key!r}; its parameters: {allowed}")
        if key in given:
            raise RuleError(f"{kind} {name!r}: parameter {key!r} is given twice")
        given[key] = _convert(entry, by_name[key], value.strip(), kind)
    for p in entry.params:
        if p.required and p.name not in given:
            raise RuleError(f"{kind} {name!r} needs parameter {p.name!r}")
    ordered = tuple((p.name, given[p.name]) for p in entry.params if p.name in given)
    return RuleSpec(name, ordered)


def with_defaults(entry: Entry, given: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter of ``entry``: those ``given``, and the defaults of the rest (what
    its ``check`` receives)."""
    return {p.name: p.default for p in entry.params if not p.required} | dict(given)


def validate(specs: Sequence[str | RuleSpec], n_hidden: int) -> tuple[RuleSpec, ...]:
    """Parse every rule and check the values that depend on the network size."""
    parsed = tuple(parse(s) for s in specs)
    for spec in parsed:
        entry = REGISTRY[spec.name]
        if entry.check is not None:
            try:
                entry.check(with_defaults(entry, dict(spec.kwargs)), n_hidden)
            except RuleError as exc:
                if str(exc).startswith("rule "):
                    raise
                raise RuleError(f"rule {spec.name!r}: {exc}") from None
    return parsed


def spec_numbers(specs: Sequence[str | RuleSpec]) -> dict[str, float]:
    """The numeric parameters of a chain of rules, keyed ``"<index>.<param>"``."""
    out: dict[str, float] = {}
    for i, spec in enumerate(parse(s) for s in specs):
        kinds = {p.name: p.kind for p in REGISTRY[spec.name].params}
        for k, v in spec.kwargs:
            if kinds[k] != "str":
                out[f"{i}.{k}"] = v
    return out


def spec_structure(
    specs: Sequence[str | RuleSpec], shapes: LayerShapes | None = None
) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    """What a chain of rules is, without its numbers: a hashable compile key.

    With the network's layer ``shapes``, it also holds each rule's library-set
    arguments (see :class:`Entry`), which :func:`build` passes on.
    """
    out = []
    for spec in (parse(s) for s in specs):
        entry = REGISTRY[spec.name]
        kinds = {p.name: p.kind for p in entry.params}
        kwargs = tuple((k, v) for k, v in spec.kwargs if kinds[k] == "str")
        if shapes is not None and entry.compile_args is not None:
            kwargs += _library_args(entry, entry.compile_args(dict(spec.kwargs), shapes))
        out.append((spec.name, kwargs))
    return tuple(out)


def _library_args(entry: Entry, extra: Any) -> tuple[tuple[str, Any], ...]:
    """What ``entry.compile_args`` returned, as ``((name, value), ...)``: a dict or
    pairs of names that are not the rule's own parameters and hashable values (they
    are part of the compile key), or a RuleError naming the rule."""
    where = f"rule {entry.name!r}: compile_args"
    try:
        pairs = tuple(extra.items()) if isinstance(extra, Mapping) else tuple(extra)
        if not all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
            raise TypeError
    except TypeError:
        raise RuleError(
            f"{where} must return a dict (or pairs) of keyword arguments, got {extra!r:.100}"
        ) from None
    own = {p.name for p in entry.params}
    for name, value in pairs:
        if name in own:
            raise RuleError(f"{where} sets {name!r}, which the rule string sets")
        try:
            hash(value)
        except TypeError:
            raise RuleError(
                f"{where} must give hashable values (tuples, not lists): {name}={value!r:.80}"
            ) from None
    return pairs


def build(specs: Sequence[str | RuleSpec], numbers: Mapping[str, Any] | None = None) -> Rule:
    """Build the chained rule; ``numbers`` (from :func:`spec_numbers`) may replace
    numeric parameters with traced values."""
    rules = []
    for i, spec in enumerate(parse(s) for s in specs):
        kwargs = dict(spec.kwargs)
        if numbers is not None:
            for k in list(kwargs):
                if f"{i}.{k}" in numbers:
                    kwargs[k] = numbers[f"{i}.{k}"]
        entry = REGISTRY[spec.name]
        rule = entry.factory(**kwargs)
        if not isinstance(rule, Rule):
            raise RuleError(
                f"rule {spec.name!r}: its factory must return a Rule(init, update), "
                f"got {type(rule).__name__}"
            )
        # the name shows what the rule string says, not the library-set arguments
        named = {p.name for p in entry.params}
        shown = RuleSpec(spec.name, tuple((k, v) for k, v in spec.kwargs if k in named))
        rules.append(_checked(rule._replace(name=str(shown)), spec.name))
    return chain(*rules)


def _checked(rule: Rule, name: str) -> Rule:
    """``rule`` whose ``update`` checks, when traced, the form of what it returns: a
    pair ``(selection, state)``, one LayerSelection per layer, masks of the layer's
    shapes. A mistake then names the rule instead of failing deep inside training."""
    update = rule.update

    def checked(proposal: Any, state: Any, params: Any, ctx: Any) -> tuple[Any, Any]:
        out = update(proposal, state, params, ctx)
        layers = proposal.layers
        if not isinstance(out, tuple) or len(out) != 2:
            raise RuleError(f"rule {name!r}: update must return a pair (selection, state)")
        selection = out[0]
        if all(isinstance(x, LayerSelection) for x in out):
            raise RuleError(
                f"rule {name!r}: update must return a pair (selection, state), where the "
                "selection is a pair (hidden, output) of LayerSelection; it returned two "
                "LayerSelection (was the state left out?)"
            )
        if (
            not isinstance(selection, tuple | list)
            or isinstance(selection, LayerSelection)
            or len(selection) != len(layers)
            or not all(isinstance(sel, LayerSelection) for sel in selection)
        ):
            raise RuleError(
                f"rule {name!r}: the selection must hold one LayerSelection per layer, "
                f"(hidden, output); got {selection!r:.200}"
            )
        _check_state(name, state, out[1])
        selection = list(selection)
        for index, (layer, sel, lp) in enumerate(
            zip(("hidden", "output"), selection, layers, strict=True)
        ):
            n_post, n_pre = lp.delta.shape[0], lp.pre.shape[0]
            shapes = {
                "post": (n_post,),
                "pre": (n_pre,),
                "synapses": (n_post, n_pre),
                "threshold": (n_pre,),
            }
            fields = {}
            for field, shape in shapes.items():
                value = getattr(sel, field)
                if value is None:
                    continue
                value = jnp.asarray(value)  # a list or NumPy array is taken as an array
                if value.shape != shape:
                    raise RuleError(
                        f"rule {name!r}: the {layer} layer's {field} has shape "
                        f"{value.shape}, expected {shape}"
                    )
                if field == "synapses" and value.dtype != jnp.bool_:
                    # a synapse is selected or not: other values would be applied as
                    # selected but priced as weights
                    raise RuleError(
                        f"rule {name!r}: the {layer} layer's synapses must be a boolean "
                        f"matrix, got {value.dtype} (scale updates with post or pre)"
                    )
                if jnp.issubdtype(value.dtype, jnp.floating):
                    # float64 masks (NumPy's default) would promote a float32 run's weights
                    value = value.astype(lp.delta.dtype)
                fields[field] = value
            selection[index] = sel._replace(**fields)
        return tuple(selection), out[1]

    return rule._replace(update=checked)


def _check_state(name: str, before: Any, after: Any) -> None:
    """The state ``update`` returns must have the form of the one it got (it is carried
    from sample to sample): the same structure and shapes, and no change between
    integer and floating point (or keys) of a leaf that came in with a definite type,
    which JAX cannot carry either (such an integer plus 0.5 is floating point, if
    weakly typed). A leaf that came in weakly typed (a Python number from ``init``) JAX
    promotes to what ``update`` returns; changes of precision (float32 and float64
    under JAX's 64-bit mode) are left to JAX."""

    def kind(x: Any, *, weak: bool) -> str | None:
        dtype = getattr(x, "dtype", None)
        if dtype is None:  # a Python number: JAX promotes it where it comes in
            if not weak or not isinstance(x, int | float | complex):
                return None
            dtype = jnp.result_type(x)
        elif not weak and getattr(getattr(x, "aval", x), "weak_type", False):
            return None
        if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            return "key"
        return "float" if jnp.issubdtype(dtype, jnp.inexact) else "integer"

    def form(
        state: Any, *, weak: bool
    ) -> tuple[Any, list[tuple[tuple[int, ...], Any, str | None]]]:
        leaves, tree = jax.tree.flatten(state)
        return tree, [
            (tuple(jnp.shape(x)), getattr(x, "dtype", None), kind(x, weak=weak)) for x in leaves
        ]

    tree_before, leaves_before = form(before, weak=False)
    tree_after, leaves_after = form(after, weak=True)
    same = tree_before == tree_after and all(
        a[0] == b[0] and (a[2] is None or b[2] is None or a[2] == b[2])
        for a, b in zip(leaves_before, leaves_after, strict=True)
    )
    if not same:

        def shown(tree: Any, leaves: list[Any]) -> str:
            text = ", ".join(f"{dtype}{list(shape)}" for shape, dtype, _ in leaves)
            return f"{tree} with leaves ({text})"

        raise RuleError(
            f"rule {name!r}: update must return its state in the form it got it (same "
            "structure and shapes, integer or floating point as it was); got "
            f"{shown(tree_before, leaves_before):.300}, returned "
            f"{shown(tree_after, leaves_after):.300}"
        )


def describe(registry: dict[str, Entry] | None = None) -> str:
    """Text listing every rule with its parameters, for ``thrifty rules``."""
    registry = REGISTRY if registry is None else registry
    lines = []
    for name in sorted(registry):
        entry = registry[name]
        parts = []
        for p in entry.params:
            kind = "|".join(p.choices) if p.choices else p.kind
            parts.append(f"{p.name}=<{kind}>" + ("" if p.required else f" (default {p.default})"))
        lines.append(f"{name}" + (":" + ", ".join(parts) if parts else ""))
        lines.append(f"    {entry.summary.replace('``', '')}")  # plain text, not markup
    return "\n".join(lines)
