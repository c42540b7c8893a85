"""The command line: smoke runs and errors that name the option."""

from __future__ import annotations

import json
import subprocess
import sys

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
    ],
)
def test_invalid_options_fail_before_work(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--dataset", "synthetic", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err


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
