"""The disk cache of compiled programs: where it lives, when it is off, and that a
program loaded from it gives the same record as one compiled afresh."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from thrifty.compile_cache import (
    ENV,
    cache_dir,
    enable_compilation_cache,
    machine_tag,
    usable_cores,
)


@pytest.mark.parametrize("value", ["off", "OFF", "0", "false", "no"])
def test_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENV, value)
    assert cache_dir() is None
    if not getattr(jax.config, "jax_compilation_cache_dir", None):
        assert enable_compilation_cache() is None


def test_named_directory_is_split_by_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV, str(tmp_path))
    assert cache_dir() == tmp_path / machine_tag()
    assert machine_tag().endswith(f"-{usable_cores()}cores")
    assert machine_tag() == machine_tag()


def test_default_is_under_the_cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV)
    monkeypatch.setenv("THRIFTY_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path / "jax" / machine_tag()


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs at least 2 cores and sched_getaffinity",
)
def test_tag_follows_the_cores_a_process_may_use() -> None:
    cores = os.sched_getaffinity(0)
    two = machine_tag()
    os.sched_setaffinity(0, {min(cores)})  # this thread only
    try:
        one = machine_tag()
    finally:
        os.sched_setaffinity(0, cores)
    assert one.endswith("-1cores")
    assert one != two
    assert one.rsplit("-", 1)[0] == two.rsplit("-", 1)[0]


def test_unwritable_directory_warns_and_stays_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if getattr(jax.config, "jax_compilation_cache_dir", None):
        pytest.skip("JAX's own cache directory is set")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(ENV, str(blocker / "cache"))
    # the command line prefixes warnings with "thrifty: warning:" itself
    with pytest.warns(UserWarning, match=f"^no compilation cache .*{ENV}"):
        assert enable_compilation_cache() is None
    assert not getattr(jax.config, "jax_compilation_cache_dir", None)


def test_jax_setting_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    before = getattr(jax.config, "jax_compilation_cache_dir", None)
    min_time = jax.config.jax_persistent_cache_min_compile_time_secs
    monkeypatch.setenv(ENV, str(tmp_path / "thrifty"))
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "own"))
    try:
        assert enable_compilation_cache() == tmp_path / "own"
        assert jax.config.jax_persistent_cache_min_compile_time_secs == min_time
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
    assert not (tmp_path / "thrifty").exists()


def _cache_of_worker() -> str | None:
    return getattr(jax.config, "jax_compilation_cache_dir", None)


def test_worker_processes_use_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from thrifty.experiments.executors import LocalPool

    monkeypatch.setenv(ENV, str(tmp_path))
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    pool = LocalPool(1)
    try:
        used = pool.submit(_cache_of_worker).result()
    finally:
        pool.shutdown()
    assert used == str(tmp_path / machine_tag())


def _train(cache: str) -> tuple[dict, str]:
    """The record of a short synthetic run of ``thrifty train`` with the cache ``cache``
    (timing fields removed), and what the run wrote to stderr."""
    env = dict(os.environ, **{ENV: cache})
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    command = [sys.executable, "-m", "thrifty", "train", "--dataset", "synthetic"]
    command += ["--hidden", "12", "--rule", "subnet:units=6", "--check-interval", "200"]
    command += ["--budget-epochs", "0.3", "--json", "--quiet"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    del record["wall_time_s"], record["samples_per_s"]
    return record, out.stderr


def _programs(root: Path) -> list[Path]:
    return sorted(root.glob("*/*-cache"))


@pytest.mark.slow
def test_programs_from_the_cache_give_the_same_record(tmp_path: Path) -> None:
    first, _ = _train(str(tmp_path))
    stored = _programs(tmp_path)
    assert stored, "the first run stored no compiled program"
    second, _ = _train(str(tmp_path))
    # every program of the second run was found: none was compiled and stored anew
    assert _programs(tmp_path) == stored
    fresh, _ = _train("off")
    assert second == first
    assert fresh == first
    assert first["samples"] > 0 and first["energy"]["total"]["m0"] > 0
    # a damaged program is compiled afresh, with a warning
    for path in stored:
        path.write_bytes(b"damaged")
    damaged, stderr = _train(str(tmp_path))
    assert damaged == first
    assert "Error reading persistent compilation cache entry" in stderr
