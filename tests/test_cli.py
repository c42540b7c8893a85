"""The command line: smoke runs and errors that name the option."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from thrifty.cli import main


def thrifty(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thrifty", *args], capture_output=True, text=True, timeout=300
    )


def test_train_json_record() -> None:
    out = thrifty(
        "train", "--dataset", "synthetic", "--hidden", "12", "--check-interval", "200", "--json"
    )
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["status"] == "converged"
    assert record["energy"]["total"]["m0"] == record["samples"] * (12 * 785 + 10 * 13)


def test_train_summary_and_rules(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "train",
            "--dataset",
            "synthetic",
            "--hidden",
            "12",
            "--rule",
            "subnet:units=8",
            "--rule",
            "top-k:fraction=0.5",
            "--quiet",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "status" in text and "M0" in text and "samples/s" in text
    assert "subnet:units=8 + top-k:fraction=0.5" in text


def test_summary_shows_transient_cost_m_alpha_and_what_is_left_in_s(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["train", "--dataset", "synthetic", "--hidden", "8", "--quiet", "--alpha", "0.5"]
    assert main([*args, "--synapses", "caching:threshold=0.01"]) == 0
    text = capsys.readouterr().out
    assert "of which transient cost" in text and "M_alpha (alpha = 0.5)" in text
    assert "left in s    hidden:" in text and "left in s    output:" in text
    assert "M0 (consolidations)" in text and "M0 (updates)" not in text
    assert main(args) == 0
    plain = capsys.readouterr().out
    assert "transient" not in plain and "left in s" not in plain and "M_alpha" in plain
    assert "M0 (updates)" in plain and "consolidations" not in plain


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--hidden", "0"], "--hidden"),
        (["--hidden", "-5"], "--hidden"),
        (["--lr", "0"], "--lr"),
        (["--lr", "-0.01"], "--lr"),
        (["--rule", "subnet:units=50", "--hidden", "10"], "subnet"),
        (["--rule", "nosuchrule"], "known"),
        (["--rule", "top-k:fraction=1.5"], "fraction"),
        (["--rule", "top-k:fraction=0.1,size=3"], "size"),
        (["--synapses", "teleport"], "teleport"),
        (["--out", ""], "--out: must be a path, got an empty string"),
        (["--lr", "1e300"], "--lr: lr must be a number > 0 that float32 holds"),
        (["--budget-epochs", "0.04"], "--budget-epochs: budget_epochs: a budget of 80 samples"),
    ],
)
def test_invalid_options_fail_before_work(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    import thrifty.train

    def no_work(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("work started despite a bad option")

    monkeypatch.setattr(thrifty.train, "load_dataset", no_work)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--dataset", "synthetic", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err


@pytest.mark.parametrize(
    ("command", "out", "needle"),
    [
        ("train", "adir", "is a directory"),
        ("train", "missing/x.json", "does not exist"),
        ("train", "afile/x.json", "is not a directory"),
        ("train", "apipe", "is not a regular file"),
        ("train", "aloop", "is a loop of symbolic links"),
        ("sweep", "afile", "is not a directory"),
        ("sweep", "afile/results", "cannot create"),
        ("reproduce", "afile", "is not a directory"),
    ],
)
def test_bad_output_paths_fail_before_any_run(
    command: str, out: str, needle: str, tmp_path: Any, monkeypatch: Any, capsys: Any
) -> None:
    """A path that cannot be written stops the command before it trains anything."""
    import thrifty.experiments
    import thrifty.reproduce
    import thrifty.train

    def no_work(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("work started despite a bad --out")

    monkeypatch.setattr(thrifty.train, "run", no_work)
    monkeypatch.setattr(thrifty.experiments, "run_sweep", no_work)
    monkeypatch.setattr(thrifty.reproduce, "reproduce", no_work)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("")
    os.mkfifo(tmp_path / "apipe")
    (tmp_path / "aloop").symlink_to(tmp_path / "aloop2")
    (tmp_path / "aloop2").symlink_to(tmp_path / "aloop")
    (tmp_path / "sweep.toml").write_text('[run]\ndataset = "synthetic"\nn_hidden = 5\n')
    args = {
        "train": ["train", "--dataset", "synthetic", "--hidden", "5"],
        "sweep": ["sweep", "sweep.toml"],
        "reproduce": ["reproduce"],
    }[command]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--out", out])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--out" in err and needle in err
    left = ["adir", "afile", "aloop", "aloop2", "apipe", "sweep.toml"]
    assert sorted(q.name for q in tmp_path.iterdir()) == left
    assert (tmp_path / "apipe").is_fifo()


@pytest.mark.parametrize("command", ["sweep", "reproduce"])
@pytest.mark.parametrize("writes", [False, True])
def test_failed_start_leaves_no_empty_output_dir(
    command: str, writes: bool, tmp_path: Any, monkeypatch: Any, capsys: Any
) -> None:
    """A command that fails before writing anything removes the --out directories
    it created; one that wrote something keeps them."""
    import thrifty.experiments
    import thrifty.reproduce
    from thrifty.data import DataError

    def fails(*args: Any, out: Any = None, **kwargs: Any) -> None:
        out = Path(out if out is not None else args[1])
        assert out.is_dir()
        if writes:
            (out / "records").mkdir()
        raise DataError("no data here")

    monkeypatch.setattr(thrifty.experiments, "run_sweep", fails)
    monkeypatch.setattr(thrifty.reproduce, "reproduce", fails)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep.toml").write_text('[run]\ndataset = "synthetic"\nn_hidden = 5\n')
    (tmp_path / "kept").mkdir()
    args = {"sweep": ["sweep", "sweep.toml"], "reproduce": ["reproduce"]}[command]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--out", "new/deeper/results"])
    assert exc.value.code == 4
    assert "no data here" in capsys.readouterr().err
    assert (tmp_path / "new/deeper/results/records").is_dir() == writes
    assert (tmp_path / "new").exists() == writes
    # a directory that existed before is never removed
    with pytest.raises(SystemExit):
        main([*args, "--out", "kept"])
    assert (tmp_path / "kept").is_dir()


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("list.json", "[1, 2]", "must hold a [run] table"),
        ("text.toml", '[run]\nn_hidden = "100"\n', "n_hidden must be an integer"),
        ("unknown.toml", "[run]\nfoo = 1\n", "unknown config field(s) 'foo'"),
        ("sweep.toml", "seeds = [0, 1]\n[run]\nn_hidden = 5\n", "thrifty sweep"),
        ("empty.toml", "", "empty; give a [run] table"),
        ("beside.toml", 'dataset = "synthetic"\n[run]\nn_hidden = 5\n', "top-level key"),
        ("tables.toml", "[other]\nn_hidden = 5\n", "unknown table(s) 'other'"),
        ("upper.JSON", '{"run": {"n_hidden": "5"}}', "n_hidden must be an integer"),
        ("binary.toml", "\udcff", "cannot read config file"),
    ],
)
def test_train_config_file_errors_name_the_file(
    name: str, content: str, needle: str, tmp_path: Any, capsys: Any
) -> None:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(SystemExit) as exc:
        main(["train", "--config", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and f"--config {str(path)!r}" in err.replace("--config: ", "--config ")


def test_float64_in_a_config_or_sweep_file_turns_on_64_bit_mode(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """The dtype of a --config or sweep file decides JAX's 64-bit mode, as --dtype does;
    JAX_ENABLE_X64 counts only when it says yes."""
    from thrifty.cli import _needs_x64, build_parser

    f64, f32 = tmp_path / "f64.toml", tmp_path / "f32.toml"
    f64.write_text('[run]\ndataset = "synthetic"\nn_hidden = 5\ndtype = "float64"\n')
    f32.write_text('[run]\ndataset = "synthetic"\nn_hidden = 5\n')
    grid = tmp_path / "grid.toml"
    grid.write_text('[run]\nn_hidden = 5\n[grid]\ndtype = ["float32", "float64"]\n')
    parse = build_parser().parse_args
    for value in ("0", "false", ""):
        monkeypatch.setenv("JAX_ENABLE_X64", value)
        assert _needs_x64(parse(["train", "--config", str(f64)]))
        assert _needs_x64(parse(["sweep", str(grid), "--out", "r"]))
        assert not _needs_x64(parse(["train", "--config", str(f32)]))
        assert not _needs_x64(parse(["train", "--config", str(f64), "--dtype", "float32"]))
        assert not _needs_x64(parse(["sweep", str(f32), "--out", "r"]))
        assert not _needs_x64(parse(["reproduce"]))
    monkeypatch.setenv("JAX_ENABLE_X64", "1")
    assert _needs_x64(parse(["reproduce"]))


def test_a_config_file_is_read_once(tmp_path: Any, monkeypatch: Any) -> None:
    """``train --config`` reads its file once, for the 64-bit check and the config."""
    from thrifty.cli import _config_from_args, _needs_x64, build_parser
    from thrifty.experiments import configfile

    path = tmp_path / "run.toml"
    path.write_text('[run]\ndataset = "synthetic"\nn_hidden = 7\nlr = 0.02\n')
    reads: list[Any] = []
    read = configfile.read
    monkeypatch.setattr(configfile, "read", lambda p: reads.append(p) or read(p))
    args = build_parser().parse_args(["train", "--config", str(path), "--seed", "3"])
    assert not _needs_x64(args)
    config = _config_from_args(args)
    assert (config.n_hidden, config.lr, config.seed, config.dataset) == (7, 0.02, 3, "synthetic")
    assert len(reads) == 1


def test_a_float64_config_file_trains_from_the_command_line(tmp_path: Any) -> None:
    """A fresh process (64-bit mode off at the start) runs a float64 config file."""
    path = tmp_path / "f64.toml"
    path.write_text(
        '[run]\ndataset = "synthetic"\nn_hidden = 5\ndtype = "float64"\ncheck_interval = 200\n'
        "budget_epochs = 0.5\n"
    )
    done = thrifty("train", "--config", str(path), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["config"]["dtype"] == "float64"


def test_a_bad_config_of_a_sweep_is_named_with_its_grid_point(tmp_path: Any, capsys: Any) -> None:
    path = tmp_path / "sweep.toml"

    def refused(text: str) -> str:
        """The error of a sweep of ``text``, which must exit 2 before making --out."""
        path.write_text(text)
        with pytest.raises(SystemExit) as exc:
            main(["sweep", str(path), "--out", str(tmp_path / "r")])
        assert exc.value.code == 2
        assert not (tmp_path / "r").exists()
        return str(capsys.readouterr().err)

    err = refused(
        '[run]\ndataset = "synthetic"\nn_hidden = 10\n'
        '[grid]\nrules = ["lazy", "subnet:units=20"]\nlr = [0.01, 0.02]\n'
    )
    assert f"{str(path)!r}, config 3 of 4 (rules=['subnet:units=20']): rule 'subnet'" in err
    # a budget too short for the synthetic data, known only once the data is made
    err = refused(
        '[run]\ndataset = "synthetic"\nn_hidden = 10\ncheck_interval = 500\n'
        "[grid]\nbudget_epochs = [1.0, 0.05]\n"
    )
    assert f"{str(path)!r}, config 2 of 2 (budget_epochs=0.05): " in err
    assert "budget" in err


def test_terminating_a_run_exits_143_without_a_traceback(tmp_path: Any) -> None:
    """SIGTERM (kill, timeout, a batch system) is handled as Ctrl-C is: a message and its
    own exit status, no record half-written."""
    import signal
    import time

    out = tmp_path / "r.json"
    args = ["--dataset", "synthetic", "--hidden", "5", "--check-interval", "100"]
    args += ["--budget-epochs", "1000", "--criterion", "1", "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "thrifty", "train", *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    while "samples" not in proc.stderr.readline():  # training has started
        assert proc.poll() is None and time.monotonic() < deadline
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert "terminated" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_stored_sweep_needs_no_data(
    tmp_path: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the data of runs not stored yet is checked: a finished sweep runs again
    (skipping everything) where its data is gone."""
    from thrifty.experiments.store import ResultStore

    monkeypatch.setattr(ResultStore, "is_final", lambda self, key: True)
    config = tmp_path / "sweep.toml"
    config.write_text('[run]\ndataset = "mnist"\nn_hidden = 5\n')
    args = ["sweep", str(config), "--out", str(tmp_path / "r"), "--data-dir", str(tmp_path)]
    assert main(args) == 0
    assert "1 skipped" in capsys.readouterr().out


def test_main_leaves_signal_handlers_and_warning_format_as_it_found_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While a command runs, SIGTERM is thrifty's only where nobody handles it, and only
    thrifty's own warnings print as one line; afterwards both are as before."""
    import os
    import signal
    import warnings

    import thrifty.cli

    seen: dict[str, Any] = {}

    def command(args: Any) -> int:
        seen["handler"] = signal.getsignal(signal.SIGTERM)
        fmt = warnings.formatwarning
        seen["ours"] = fmt("careful", UserWarning, thrifty.cli.__file__, 1, "")
        seen["theirs"] = fmt("careful", UserWarning, os.path.abspath("elsewhere.py"), 7, "")
        if seen.get("signal"):
            os.kill(os.getpid(), signal.SIGTERM)
        return 0

    monkeypatch.setattr(thrifty.cli, "cmd_rules", command)
    formatting = warnings.formatwarning
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        assert main(["rules"]) == 0
        assert seen["handler"] is thrifty.cli._terminate
        assert seen["ours"] == "thrifty: warning: careful\n"
        assert "elsewhere.py:7: UserWarning: careful" in seen["theirs"]
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert warnings.formatwarning is formatting
        # a caller's own handler stays in place and gets the signal
        caught: list[int] = []
        signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(signum))
        seen["signal"] = True
        assert main(["rules"]) == 0
        assert caught == [signal.SIGTERM] and seen["handler"] is not thrifty.cli._terminate
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(("signame", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
@pytest.mark.parametrize("where", ["gc callback", "finalizer", "swallowed"])
def test_a_signal_whose_exception_would_be_dropped_still_stops_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, signame: str, status: int, where: str
) -> None:
    """A signal arriving while a garbage-collection callback (JAX's, busiest during
    its import) or a finalizer runs, where Python drops the exception, is sent again
    and stops the command while it runs; one whose exception some code swallowed stops
    it when it ends. Either way the command ends as interrupted, not with 0."""
    import gc
    import os
    import signal
    import time

    import thrifty.cli

    signum = getattr(signal, signame)
    ran: list[str] = []

    def in_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and not ran:
            ran.append("signalled")
            os.kill(os.getpid(), signum)  # the handler runs here, inside the callback

    class Finalized:
        def __del__(self) -> None:
            ran.append("signalled")
            os.kill(os.getpid(), signum)  # the handler runs here, inside the finalizer

    def command(args: Any) -> int:
        if where in ("gc callback", "finalizer"):
            if where == "gc callback":
                gc.callbacks.append(in_gc)
            else:
                garbage = Finalized()
                garbage.cycle = garbage  # type: ignore[attr-defined]
                del garbage
            try:
                gc.collect()
            finally:
                if in_gc in gc.callbacks:
                    gc.callbacks.remove(in_gc)
            ran.append("collected")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # work that the signal sent again stops
                time.sleep(0.005)
        else:
            try:
                ran.append("signalled")
                os.kill(os.getpid(), signum)
            except KeyboardInterrupt:
                ran.append("swallowed")
        ran.append("finished")
        return 0

    monkeypatch.setattr(thrifty.cli, "cmd_rules", command)
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    unraisable = sys.unraisablehook
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        t0 = time.monotonic()
        with pytest.raises(SystemExit) as exc:
            main(["rules"])
        if where != "swallowed":
            assert ran == ["signalled", "collected"] and time.monotonic() - t0 < 5
        else:
            assert ran == ["signalled", "swallowed", "finished"]
        assert exc.value.code == status
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert sys.unraisablehook is unraisable
        # the next command starts afresh
        monkeypatch.setattr(thrifty.cli, "cmd_rules", lambda args: 0)
        assert main(["rules"]) == 0
        time.sleep(2 * thrifty.cli.RESEND_S)  # nothing is sent again after the command
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert ("terminated" if status == 143 else "interrupted") in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_signal_sent_again_never_reaches_the_next_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A command that ends within the delay after a dropped signal (it stops, by its
    final check) leaves nothing behind: the next command in the process runs on."""
    import gc
    import os
    import signal
    import time

    import thrifty.cli

    fired: list[bool] = []

    def in_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGINT)

    def first(args: Any) -> int:
        gc.callbacks.append(in_gc)
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(in_gc)
        return 0  # at once, before the signal is sent again

    def second(args: Any) -> int:
        time.sleep(4 * thrifty.cli.RESEND_S)
        return 0

    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        monkeypatch.setattr(thrifty.cli, "cmd_rules", first)
        with pytest.raises(SystemExit) as exc:
            main(["rules"])
        assert exc.value.code == 130
        monkeypatch.setattr(thrifty.cli, "cmd_rules", second)
        assert main(["rules"]) == 0
        time.sleep(2 * thrifty.cli.RESEND_S)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_signals_during_the_imports_are_raised_after_them() -> None:
    """While JAX is imported a signal is only remembered (an exception raised inside
    the import, where C++ calls back into Python, can abort the process); the command
    raises for it once the imports are done."""
    import os
    import signal
    import time

    import thrifty.cli

    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    went_on = []
    try:
        with thrifty.cli._command_signals():
            with thrifty.cli._deferred_signals():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the handler has run by now, and raised nothing
                went_on.append(True)
            with pytest.raises(thrifty.cli._Terminated):
                thrifty.cli._stop_if_signalled()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert went_on == [True]


def test_a_command_runs_with_standard_output_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Started with its standard output closed (``>&-``), Python's ``sys.stdout`` is
    None: the command's output goes nowhere, and it still ends with 0."""
    monkeypatch.setattr(sys, "stdout", None)
    assert main(["rules"]) == 0


def _into_a_closed_pipe(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with its standard output a pipe whose reader is gone before the
    first line is written (as ``| head -0``)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            command, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300, **kwargs
        )
    finally:
        os.close(write_end)


def test_output_into_a_closed_pipe_ends_quietly_with_141() -> None:
    """`thrifty rules | head -1`: once the reader has gone, the command stops without a
    traceback, with the status a shell gives a command killed by SIGPIPE."""
    import os

    for buffered in (True, False):  # output written at the end, or line by line
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        if not buffered:
            env["PYTHONUNBUFFERED"] = "1"
        proc = _into_a_closed_pipe([sys.executable, "-m", "thrifty", "rules"], env=env)
        assert proc.returncode == 141, (buffered, proc.stderr)
        assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_train_writes_its_record_before_its_output_and_through_a_link(tmp_path: Any) -> None:
    """`thrifty train --out r.json | head -1`: the reader going away does not lose the
    record, which is written first; an --out that is a symbolic link is written to the
    file it names, and the link stays."""
    target = tmp_path / "target.json"
    target.write_text("old")
    (tmp_path / "link.json").symlink_to(target)
    command = [sys.executable, "-m", "thrifty", "train", "--dataset", "synthetic"]
    command += ["--hidden", "5", "--budget-epochs", "0.5", "--json"]
    for out in ("record.json", "link.json"):
        proc = _into_a_closed_pipe([*command, "--out", out], cwd=tmp_path)
        assert proc.returncode == 141, proc.stderr
    assert json.loads((tmp_path / "record.json").read_text())["config"]["n_hidden"] == 5
    assert (tmp_path / "link.json").is_symlink()
    assert json.loads(target.read_text())["config"]["n_hidden"] == 5
    # a file replaced keeps its permissions
    target.chmod(0o604)  # not what a new file gets
    assert main([*command[3:], "--quiet", "--out", str(target)]) == 0
    assert target.stat().st_mode & 0o777 == 0o604


def test_workers_that_do_nothing_or_outnumber_the_cores_are_warned_of(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import argparse

    from thrifty.cli import _warn_of_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)  # the machine's, not this process's
    with pytest.warns(UserWarning, match="--workers 4 is ignored with --scheduler"):
        _warn_of_workers(argparse.Namespace(workers=4, scheduler="tcp://host:8786"))
    with pytest.warns(UserWarning, match="--workers 3 starts more processes than .* 2 cores"):
        _warn_of_workers(argparse.Namespace(workers=3, scheduler=None))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_of_workers(argparse.Namespace(workers=2, scheduler=None))
        _warn_of_workers(argparse.Namespace(workers=1, scheduler="tcp://host:8786"))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    with pytest.warns(UserWarning, match="than the 1 core this process may use"):
        _warn_of_workers(argparse.Namespace(workers=2, scheduler=None))


def test_a_bad_rule_in_the_config_file_names_the_file(tmp_path: Any, capsys: Any) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[run]\nn_hidden = 5\nrules = ["bogus"]\n')
    with pytest.raises(SystemExit) as exc:
        main(["train", "--config", str(path)])
    assert exc.value.code == 2
    assert f"--config {str(path)!r}: unknown rule 'bogus'" in capsys.readouterr().err


def test_a_record_that_cannot_be_written_is_still_printed(
    tmp_path: Any, monkeypatch: Any, capsys: Any
) -> None:
    import thrifty.cli

    def full_disk(path: Any, data: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(thrifty.cli, "_write_json", full_disk)
    args = ["train", "--dataset", "synthetic", "--hidden", "5", "--json"]
    assert main([*args, "--out", str(tmp_path / "r.json")]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["status"] in ("converged", "budget")
    assert "No space left" in err and "printed above" in err
    # without --json, the whole record follows the summary
    assert main([*args[:-1], "--out", str(tmp_path / "r.json")]) == 2
    out, err = capsys.readouterr()
    assert out.startswith("run ") and json.loads(out[out.index("\n{") :])["samples"] > 0
    assert "No space left" in err and "printed above" in err


def test_an_option_overriding_the_config_file_is_named(tmp_path: Any, capsys: Any) -> None:
    path = tmp_path / "run.toml"
    path.write_text("[run]\nn_hidden = 5\n")
    with pytest.raises(SystemExit):
        main(["train", "--config", str(path), "--hidden", "0"])
    assert "--hidden: n_hidden" in capsys.readouterr().err


def test_sweep_with_failed_runs_exits_with_1(
    tmp_path: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every run fails (it raises): recorded, and the status is 1."""
    from thrifty import train

    def fails(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("out of luck")

    monkeypatch.setattr(train, "run", fails)
    config = tmp_path / "sweep.toml"
    config.write_text('[run]\ndataset = "synthetic"\nn_hidden = 5\n')
    assert main(["sweep", str(config), "--out", str(tmp_path / "r")]) == 1
    assert "1 failed" in capsys.readouterr().out


def test_sweep_without_its_data_stops_before_any_run(tmp_path: Any, capsys: Any) -> None:
    """No data where --data-dir points: exit status 4 before a run starts, and the
    results directory is not made."""
    config = tmp_path / "sweep.toml"
    config.write_text('[run]\ndataset = "mnist"\nn_hidden = 5\n')
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(config), "--out", str(tmp_path / "r"), "--data-dir", str(tmp_path)])
    assert exc.value.code == 4
    assert "mnist" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_unusable_scheduler_is_an_error_naming_it(tmp_path: Any, capsys: Any) -> None:
    config = tmp_path / "sweep.toml"
    config.write_text('[run]\ndataset = "synthetic"\nn_hidden = 5\n')
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(config), "--out", str(tmp_path / "r"), "--scheduler", "nohost"])
    assert exc.value.code == 2
    assert "Dask" in capsys.readouterr().err


def test_unknown_dataset_lists_choices() -> None:
    out = thrifty("train", "--dataset", "cifar10")
    assert out.returncode == 2
    assert "mnist" in out.stderr and "fashion-mnist" in out.stderr


def test_rules_lists_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    from thrifty.rules import REGISTRY

    assert main(["rules"]) == 0
    text = capsys.readouterr().out
    for name in REGISTRY:
        assert name in text
    assert "plain" in text


def test_config_file(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "run.toml"
    path.write_text('[run]\ndataset = "synthetic"\nn_hidden = 9\nrules = ["subnet:units=2"]\n')
    assert main(["train", "--config", str(path), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["config"]["n_hidden"] == 9
    assert record["config"]["rules"] == ["subnet:units=2"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nn_hiden = 9\n")
    with pytest.raises(SystemExit):
        main(["train", "--config", str(bad)])
    assert "n_hiden" in capsys.readouterr().err


def test_quiet_train_prints_only_its_summary(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--quiet leaves out the progress lines and the note of where the data came from."""
    from thrifty import train

    load = train.load_dataset

    def noted(config: Any, data_dir: Any = None, log: Any = None) -> Any:
        if log is not None:
            log("synthetic: made here")
        return load(config, data_dir=data_dir, log=log)

    monkeypatch.setattr(train, "load_dataset", noted)
    args = ["train", "--dataset", "synthetic", "--hidden", "5", "--check-interval", "200"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "synthetic: made here" in err and "samples  accuracy" in err
    assert main([*args, "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.startswith("run ")


def test_reproduce_passes_datasets_figures_and_seeds(tmp_path: Any, monkeypatch: Any) -> None:
    """``--dataset``, ``--figures``, ``--seeds`` and ``--report-only`` reach
    :func:`thrifty.reproduce.reproduce`; left out, its defaults hold."""
    import thrifty.reproduce

    calls: list[dict[str, Any]] = []

    def record_call(scale: str, **kwargs: Any) -> Path:
        calls.append({"scale": scale, **kwargs})
        return Path(kwargs["out"]) / "report.md"

    monkeypatch.setattr(thrifty.reproduce, "reproduce", record_call)
    out = str(tmp_path / "r")
    assert main(["reproduce", "--out", out]) == 0
    args = ["--dataset", "fashion-mnist", "--figures", "fig1b, fig3a", "--figures", "fig5"]
    args += ["--seeds", "3", "--report-only"]
    assert main(["reproduce", "--out", out, *args]) == 0
    default, chosen = calls
    assert default["datasets"] == thrifty.reproduce.DATASETS
    assert default["figures"] is None and default["seeds"] is None
    assert default["report_only"] is False
    assert chosen["datasets"] == ("fashion-mnist",)
    assert chosen["figures"] == ("fig1b", "fig3a", "fig5") and chosen["seeds"] == 3
    assert chosen["report_only"] is True


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        (["--figures", "fig1b,fig7"], "unknown figure(s) fig7; allowed: fig1a"),
        (["--figures", " , "], "no figure named; allowed: fig1a"),
        (["--seeds", "0"], "must be an integer >= 1"),
        (["--seeds", "1000000000"], "must be an integer in [1, 100]"),
        (["--dataset", "cifar"], "invalid choice"),
    ],
)
def test_reproduce_rejects_bad_figures_seeds_and_datasets(
    option: list[str], needle: str, capsys: Any
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", *option])
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("THRIFTY_CHECK_CACHE_BYTES", "abc"),
        ("THRIFTY_CHECK_CACHE_BYTES", "-5"),
        ("THRIFTY_LOCAL_WORKERS", "0"),
        ("THRIFTY_BATCH", "vamp"),
    ],
)
@pytest.mark.parametrize("command", ["train", "sweep", "reproduce"])
def test_bad_environment_variables_fail_before_any_work(
    command: str, variable: str, value: str, tmp_path: Any, monkeypatch: Any, capsys: Any
) -> None:
    """A bad value of one of thrifty's environment variables stops the command with
    exit status 2, naming the variable, before any data is read or run is trained
    (it would otherwise surface at the first accuracy check, or not at all)."""
    import thrifty.data
    import thrifty.experiments
    import thrifty.reproduce
    import thrifty.train

    def no_work(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("work started despite a bad environment variable")

    for module, name in [
        (thrifty.train, "run"),
        (thrifty.train, "load_dataset"),
        (thrifty.data, "load"),
        (thrifty.experiments, "run_sweep"),
        (thrifty.reproduce, "reproduce"),
    ]:
        if hasattr(module, name):
            monkeypatch.setattr(module, name, no_work)
    monkeypatch.setenv(variable, value)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep.toml").write_text('[run]\ndataset = "synthetic"\nn_hidden = 5\n')
    args = {
        "train": ["train", "--dataset", "synthetic", "--hidden", "5"],
        "sweep": ["sweep", "sweep.toml", "--out", str(tmp_path / "results")],
        "reproduce": ["reproduce", "--out", str(tmp_path / "out")],
    }[command]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert variable in capsys.readouterr().err
