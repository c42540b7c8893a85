"""A disk cache of compiled programs, shared by thrifty's commands and worker processes.

Every process that trains compiles its programs first: the training chunk of each
run structure, the accuracy checks, the initial state. That takes 0.4 s per program on
average in the quick reproduction on a 2-core CPU (250 s for 604 programs), and each
worker process of a sweep compiles the programs it needs again.
JAX can keep compiled programs on disk and load them instead of compiling; thrifty
turns that on for the ``thrifty`` command, for the local worker processes it starts
and for Dask workers at their first task of a sweep (:func:`enable_compilation_cache`).
A program loaded from the cache is the program the same machine compiled before, so
results do not change.

Where the cache lives:

- ``$THRIFTY_COMPILATION_CACHE`` if set to a path, else ``<cache root>/jax``, where
  the cache root is ``$THRIFTY_CACHE`` or ``~/.cache/thrifty`` (as for the data sets);
- within it, one subdirectory per machine (:func:`machine_tag`): the processor's kind
  and features and the number of cores the process may use. A home directory shared
  by the nodes of a cluster so never hands one node's programs to another kind of
  node, and a worker pinned to one core never loads a program compiled for two.

``THRIFTY_COMPILATION_CACHE=off`` (or ``0``, ``false``, ``no``) turns it off. When
JAX's own ``jax_compilation_cache_dir`` is set (for example by
``JAX_COMPILATION_CACHE_DIR``), thrifty leaves JAX's settings as they are. The cache
holds at most :data:`MAX_BYTES`; the least recently used programs go first.

The cache is trusted code: a program read from it runs in the process. Keep it in a
directory only you can write to.

Example
-------
First thing in a Python program that trains with thrifty::

    from thrifty.compile_cache import enable_compilation_cache

    enable_compilation_cache()  # e.g. ~/.cache/thrifty/jax/x86_64-3f2a9c41d0b7-2cores
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import warnings
from pathlib import Path

ENV = "THRIFTY_COMPILATION_CACHE"
"""Environment variable: a directory for the cache, or ``off`` to turn it off."""

MAX_BYTES = 2**30
"""Most bytes the cache keeps (1 GiB); a quick reproduction writes about 9 MB."""

_OFF = frozenset({"0", "off", "false", "no"})


def usable_cores() -> int:
    """Cores this process may run on (its affinity where the system reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _processor() -> str:
    """The processor's model and feature flags as the system reports them."""
    parts = [platform.machine(), platform.processor()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key = line.split(":", 1)[0].strip()
                if key in ("model name", "flags", "Features", "CPU part"):
                    parts.append(line.strip())
                elif not line.strip() and len(parts) > 2:
                    break  # the first processor's block is enough
    except OSError:
        pass
    return "\n".join(parts)


def machine_tag() -> str:
    """Name of this machine's subdirectory of the cache, e.g. ``x86_64-3f2a9c41d0b7-2cores``.

    A hash of the processor's model and feature flags, with the number of cores the
    process may use (:func:`usable_cores`).
    """
    digest = hashlib.sha256(_processor().encode()).hexdigest()[:12]
    return f"{platform.machine() or 'machine'}-{digest}-{usable_cores()}cores"


def cache_dir() -> Path | None:
    """The cache directory for this process, from the environment; None when turned off.

    Returns
    -------
    Path or None
        ``$THRIFTY_COMPILATION_CACHE/<machine>`` when that variable names a directory,
        ``<cache root>/jax/<machine>`` when it is unset or empty, None when it is
        ``off``, ``0``, ``false`` or ``no``.
    """
    value = os.environ.get(ENV, "").strip()
    if value.lower() in _OFF:
        return None
    if value:
        root = Path(value).expanduser()
    else:
        from thrifty.data import default_cache_dir

        root = default_cache_dir() / "jax"
    return root / machine_tag()


def enable_compilation_cache() -> Path | None:
    """Turn on JAX's disk cache of compiled programs for this process.

    Call it before the process compiles anything: JAX decides at its first
    compilation whether a process uses the cache. The ``thrifty`` command, the
    worker processes of :class:`thrifty.experiments.executors.LocalPool` and the
    tasks of a sweep in a Dask worker call it; a Python program that wants the cache
    calls it first thing.

    Returns
    -------
    Path or None
        The directory in use: JAX's own ``jax_compilation_cache_dir`` when that is set
        (thrifty then changes nothing), else :func:`cache_dir`; None when the cache is
        turned off or its directory cannot be created (a warning says why).
    """
    import jax

    own = getattr(jax.config, "jax_compilation_cache_dir", None)
    if own:
        return Path(own)
    path = cache_dir()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        warnings.warn(
            f"no compilation cache ({exc}); set {ENV} to a writable directory or to 'off'",
            stacklevel=2,
        )
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    # keep every program: most compile in less than JAX's default threshold of 1 s
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if importlib.util.find_spec("filelock") is not None:
        # a size bound needs file locks, which also keep concurrent workers apart
        jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return path
