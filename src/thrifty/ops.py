"""Small numerical building blocks shared by the rules and the meters."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sort_by_magnitude(d: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``d`` sorted by ``|d|`` ascending: returns ``(|d| sorted, d in that order)``.

    Sorts unsigned integer keys ``(bits(|d|) << 1) | sign``, which order like
    ``|d|`` (the bit patterns of non-negative floats are ordered like the floats)
    and are several times faster to sort than floats on the CPU.
    """
    utype = jnp.uint64 if d.dtype.itemsize == 8 else jnp.uint32
    a = jnp.abs(d)
    keys = (jax.lax.bitcast_convert_type(a, utype) << 1) | (d < 0).astype(utype)
    keys = jnp.sort(keys)
    a_sorted = jax.lax.bitcast_convert_type(keys >> 1, d.dtype)
    d_sorted = jnp.where((keys & 1) == 1, -a_sorted, a_sorted)
    return a_sorted, d_sorted
