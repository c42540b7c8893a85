"""Test set-up: JAX in 64-bit mode so the fast path can be compared with the reference.

The library creates float32 arrays explicitly by default, so float32 behaviour is
still what the default-dtype tests exercise. The disk cache of compiled programs is
off, so that tests (and the processes they start) never write to the user's cache;
``test_compile_cache.py`` turns it on in directories of its own.

Compiled programs are released after each test module: every program XLA compiles
for the CPU holds memory mappings, and a session that kept all of them came near the
kernel's limit on mappings per process (``vm.max_map_count``, 65 530 by default) and
crashed with a segmentation fault while compiling. Released, the session peaks at
about 11 000 mappings.
"""

import os
from collections.abc import Iterator

import jax
import pytest

os.environ.setdefault("THRIFTY_COMPILATION_CACHE", "off")
jax.config.update("jax_enable_x64", True)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs() -> Iterator[None]:
    yield
    jax.clear_caches()
