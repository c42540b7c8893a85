"""What survives what: killed drivers, killed workers, diverging runs, Dask clusters.

Every process these tests start listens on 127.0.0.1 only and is ended in a ``finally``
with bounded waits.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import thrifty
from thrifty.config import RunConfig
from thrifty.data import writer_tag
from thrifty.experiments import ResultStore, load, run_sweep
from thrifty.experiments.store import FINAL_STATUSES

psutil = pytest.importorskip("psutil")

SRC = str(Path(thrifty.__file__).resolve().parents[1])
RESULT_FIELDS = (
    "config",
    "status",
    "samples",
    "diverged_at",
    "curve",
    "accuracy",
    "test_accuracy",
    "energy",
    "minimal_energy",
    "inefficiency",
)


def small(**changes: Any) -> RunConfig:
    """A run of well under a second once compiled (same structure as test_experiments)."""
    fields: dict[str, Any] = {
        "dataset": "synthetic",
        "n_hidden": 12,
        "budget_epochs": 1.0,
        "check_interval": 500,
    }
    fields.update(changes)
    return RunConfig(**fields)


def slow(seed: int, epochs: float = 15.0) -> RunConfig:
    """A run at a learning rate too small to meet the criterion within 15 epochs (of 2 000
    samples, about 0.02 s each); with more ``epochs`` it may."""
    return small(seed=seed, lr=1e-5, budget_epochs=epochs)


CACHE_VARIABLES = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Child processes share compiled programs through JAX's persistent cache.

    Every worker process would otherwise compile the same small networks again. The
    variables are read when JAX is imported, so this process is not affected; processes
    started (or spawned) from here inherit them.
    """
    saved = {name: os.environ.get(name) for name in CACHE_VARIABLES}
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax-cache"))
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def child_env() -> dict[str, str]:
    """Environment of child processes: this checkout first on the path, GPUs shared."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return env


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` every 20 ms until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def pool_workers(parent: Any) -> list[Any]:
    """The spawned worker processes of a process pool under ``parent`` (a psutil.Process)."""
    out = []
    for proc in parent.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "spawn_main" in " ".join(proc.cmdline()):
                out.append(proc)
    return out


def assert_intact(store: ResultStore, configs: list[RunConfig]) -> None:
    """One valid, finished record per distinct config and nothing else in the directory."""
    keys = sorted({c.key() for c in configs})
    assert store.keys() == keys
    assert sorted(p.name for p in store.dir.iterdir()) == [f"{k}.json" for k in keys]
    for key in keys:
        record = json.loads(store.path(key).read_text())
        assert record["key"] == key and record["status"] in FINAL_STATUSES


def assert_same_results(a: ResultStore, b: ResultStore) -> None:
    """Two stores hold the same runs with the same results (timings may differ)."""
    keys = a.keys()
    assert keys == b.keys() and keys
    for key in keys:
        ra, rb = a.read(key), b.read(key)
        for field in RESULT_FIELDS:
            assert ra[field] == rb[field], (key, field)


# ------------------------------------------------------------------------------ local


def test_diverging_run_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    configs = [small(lr=1e3), small(seed=1)]
    result = run_sweep(configs, tmp_path, progress=False)
    assert result.statuses == {"diverged": 1, "converged": 1} and result.ok
    store = ResultStore(tmp_path)
    diverged = store.read(configs[0].key())
    assert diverged["status"] == "diverged" and isinstance(diverged["diverged_at"], int)
    assert diverged["samples"] == diverged["diverged_at"] and diverged["accuracy"] is None
    assert diverged["energy"]["total"]["m0"] > 0
    df = load(tmp_path).set_index("key")
    assert df.loc[configs[0].key(), "diverged_at"] == diverged["diverged_at"]
    # Diverged is final: a second sweep does not run it again.
    assert run_sweep(configs, tmp_path, progress=False).skipped == 2


@pytest.mark.slow
def test_same_config_in_two_processes_gives_identical_results() -> None:
    code = (
        "import json, sys\n"
        "from thrifty.experiments import run_one\n"
        "r = run_one(json.loads(sys.argv[1]))\n"
        "print(json.dumps({k: r[k] for k in sys.argv[2].split(',')}, sort_keys=True))\n"
    )
    config = json.dumps(small(seed=7).to_dict())
    args = [sys.executable, "-c", code, config, ",".join(RESULT_FIELDS)]
    # Each process compiles for itself: no shared compilation cache.
    env = {k: v for k, v in child_env().items() if k not in CACHE_VARIABLES}
    procs = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    try:
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]
    first, second = (json.loads(out) for out, _ in outs)
    assert first == second
    assert first["energy"]["total"]["m0"] > 0 and first["curve"]


DRIVER = """
import json, sys
from thrifty.config import RunConfig
from thrifty.experiments import run_sweep

if __name__ == "__main__":
    configs = [RunConfig.from_dict(c) for c in json.loads(sys.argv[1])]
    run_sweep(configs, sys.argv[2], workers=2, progress=False)
"""


@pytest.mark.slow
def test_driver_killed_midway_resumes_with_every_record_intact(tmp_path: Path) -> None:
    configs = [slow(seed) for seed in range(6)]
    store = ResultStore(tmp_path)
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, json.dumps([c.to_dict() for c in configs]), str(tmp_path)],
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    workers: list[Any] = []
    try:
        parent = psutil.Process(driver.pid)
        wait_for(
            lambda: store.keys() or driver.poll() is not None, 120, "the driver's first record"
        )
        workers = pool_workers(parent)
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
        assert driver.returncode == -signal.SIGKILL, driver.stderr.read().decode()[-2000:]
        # Its workers notice that their driver is gone and end within seconds.
        assert workers, "the driver had no worker processes when it was killed"
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"orphaned workers still running: {alive}"
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(10)
        for w in workers:
            with contextlib.suppress(psutil.Error):
                w.kill()
        driver.stderr.close()

    stored = store.keys()
    finished = {k: store.path(k).read_bytes() for k in stored}
    assert 1 <= len(finished) < len(configs), "the kill should come in the middle of the sweep"
    for data in finished.values():
        assert json.loads(data)["status"] in FINAL_STATUSES
    # A write the kill interrupted leaves a temporary file named after the dead driver.
    tag = writer_tag().rsplit("_", 1)[0]
    leftover = store.dir / f".{configs[-1].key()}.{tag}_{driver.pid}.abc.tmp"
    leftover.write_text('{"key": "trunc')

    with pytest.warns(UserWarning, match="removed a temporary file left by a killed writer"):
        result = run_sweep(configs, tmp_path, progress=False)
    assert result.skipped == len(finished) and result.done == len(configs) - len(finished)
    assert store.temporaries() == []
    assert_intact(store, configs)
    for key, data in finished.items():
        assert store.path(key).read_bytes() == data


@pytest.mark.slow
def test_pool_worker_killed_midway_is_retried_or_reported(tmp_path: Path) -> None:
    configs = [slow(seed) for seed in range(10, 14)] + [small(lr=1e3)]
    store = ResultStore(tmp_path / "pool")
    written: list[str] = []
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if store.keys():
                victims = pool_workers(psutil.Process())
                if victims:
                    victims[0].kill()
                    killed.append(victims[0].pid)
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    result = run_sweep(
        configs, store, workers=2, progress=lambda rec, i, n: written.append(rec["key"])
    )
    killer.join(10)
    assert killed, "no worker was killed"
    # Every run was either recorded once or resubmitted; none lost, none written twice.
    assert len(written) == len(set(written)) == len(configs)
    assert result.done + result.failed == len(configs)
    assert result.retried >= 1 or result.failed >= 1
    for key in result.failed_keys:
        assert "BrokenProcessPool" in store.read(key)["error"]
    again = run_sweep(configs, store, progress=False)
    assert again.done == result.failed and again.skipped == len(configs) - result.failed
    assert_intact(store, configs)
    # Worker processes (JAX in 64-bit mode as here) give the results of this process.
    here = ResultStore(tmp_path / "here")
    run_sweep(configs, here, progress=False)
    assert_same_results(store, here)


# ------------------------------------------------------------------------------ Dask


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, Any]]]:
    """A scheduler and two single-thread workers, separate processes on 127.0.0.1.

    Yields the client and the worker processes (``subprocess.Popen``) by worker address.
    """
    distributed = pytest.importorskip("distributed")
    base = tmp_path_factory.mktemp("dask")
    scheduler_file = base / "scheduler.json"
    env = child_env()
    # thrifty, not JAX's variable, gives the workers a cache (test_dask_workers_keep_...)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env["THRIFTY_COMPILATION_CACHE"] = str(base / "compiled")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    local = ["--host", "127.0.0.1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
    procs: list[subprocess.Popen[bytes]] = []
    client = None
    try:
        procs.append(
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", "0"),
                    *local,
                    *("--scheduler-file", str(scheduler_file)),
                ],
                **quiet,
            )
        )
        wait_for(lambda: scheduler_file.exists() and scheduler_file.stat().st_size, 60, "scheduler")
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        workers = [
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "distributed.cli.dask_worker", address),
                    *local,
                    *("--nthreads", "1", "--no-nanny", "--memory-limit", "0", "--name", f"w{i}"),
                ],
                **quiet,
            )
            for i in range(2)
        ]
        procs.extend(workers)
        client = distributed.Client(address, timeout=60)
        client.wait_for_workers(2, timeout=60)
        pids = client.run(os.getpid)
        yield client, {address: w for w in workers for address, pid in pids.items() if pid == w.pid}
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close(timeout=10)
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.mark.slow
def test_dask_sweep_matches_the_local_sweep(tmp_path: Path, dask_cluster: Any) -> None:
    client, _ = dask_cluster
    configs = [small(seed=s) for s in range(3)] + [small(lr=1e3, seed=1)]
    remote = run_sweep(configs, tmp_path / "dask", client=client, progress=False)
    here = run_sweep(configs, tmp_path / "here", progress=False)
    assert remote.done == here.done == len(configs) and remote.ok
    assert_same_results(ResultStore(tmp_path / "dask"), ResultStore(tmp_path / "here"))
    again = run_sweep(configs, tmp_path / "dask", client=client, progress=False)
    assert again.skipped == len(configs) and again.done == 0


def test_dask_workers_keep_compiled_programs(tmp_path: Path, dask_cluster: Any) -> None:
    client, _ = dask_cluster
    run_sweep([small(seed=s) for s in range(2)], tmp_path, client=client, progress=False)
    used = client.run(lambda: __import__("jax").config.jax_compilation_cache_dir)
    assert used
    for path in used.values():
        assert path is not None and Path(path).parent.name == "compiled"
        assert list(Path(path).glob("*-cache")), "no compiled program stored"


@pytest.mark.slow
def test_dask_worker_killed_midway_is_retried_or_reported(
    tmp_path: Path, dask_cluster: Any
) -> None:
    client, workers = dask_cluster
    # runs of about 2 s: the sweep cannot end while the test looks for a busy worker,
    # even on a loaded machine
    configs = [slow(seed, epochs=120.0) for seed in range(20, 26)]
    store = ResultStore(tmp_path)
    written: list[str] = []
    outcome: dict[str, Any] = {}

    def sweep() -> None:
        try:
            outcome["result"] = run_sweep(
                configs,
                tmp_path,
                client=client,
                progress=lambda rec, i, n: written.append(rec["key"]),
            )
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=sweep, daemon=True)
    thread.start()
    wait_for(lambda: store.keys() or not thread.is_alive(), 120, "the first record")
    busy = wait_for(
        lambda: [a for a, tasks in client.processing().items() if tasks] or not thread.is_alive(),
        60,
        "a worker running a task",
    )
    assert thread.is_alive(), outcome
    time.sleep(0.2)
    victim = workers[busy[0]]
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    thread.join(180)
    assert not thread.is_alive(), "the sweep did not finish after a worker died"
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    # The scheduler ran the lost task again on the other worker (or it is reported failed).
    assert len(written) == len(set(written)) == len(configs)
    assert result.done + result.failed == len(configs)
    again = run_sweep(configs, tmp_path, progress=False)
    assert again.done == result.failed
    assert_intact(store, configs)
