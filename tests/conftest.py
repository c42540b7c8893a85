"""Test set-up: JAX in 64-bit mode so the fast path can be compared with the reference.

The library creates float32 arrays explicitly by default, so float32 behaviour is
still what the default-dtype tests exercise.
"""

import jax

jax.config.update("jax_enable_x64", True)
