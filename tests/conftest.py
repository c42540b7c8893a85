"""Test set-up: JAX in 64-bit mode so the fast path can be compared with the reference.

The library creates float32 arrays explicitly by default, so float32 behaviour is
still what the default-dtype tests exercise. The disk cache of compiled programs is
off, so that tests (and the processes they start) never write to the user's cache;
``test_compile_cache.py`` turns it on in directories of its own.
"""

import os

import jax

os.environ.setdefault("THRIFTY_COMPILATION_CACHE", "off")
jax.config.update("jax_enable_x64", True)
