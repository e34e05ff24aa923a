"""CIFAR-10's *binary* distribution: reading it (tarball or folder) and downloading it.

Each ``*.bin`` file is a sequence of 3,073-byte records: one label byte (0-9), then 3,072 pixel
bytes (1,024 red, 1,024 green, 1,024 blue, each row-major 32×32). The python distribution is
pickled and is never read. The split is upstream's (``lib/cifar.py``): train = batches 1-4,
valid = batch 5, test = the test batch, train_eval = batch 1.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nbcompile.errors import DatasetError
from nbcompile.fileio import atomic_output

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
TARBALL = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"
RECORD_BYTES = 1 + 3 * 32 * 32
NUM_LABELS = 10
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 5))
VALID_FILE = "data_batch_5.bin"
TEST_FILE = "test_batch.bin"
BATCH_FILES = (*TRAIN_FILES, VALID_FILE, TEST_FILE)


@dataclass(frozen=True)
class ImageSet:
    """Images as uint8 ``[N, 3, 32, 32]`` and labels as int64 ``[N]``."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Cifar10:
    """Upstream's four sets."""

    train: ImageSet
    valid: ImageSet
    test: ImageSet
    train_eval: ImageSet


def decode_batch(data: bytes, name: str) -> ImageSet:
    """Decode one ``*.bin`` file's bytes; DatasetError names the file and what is wrong."""
    if not data:
        raise DatasetError(f"{name}: empty file")
    if len(data) % RECORD_BYTES:
        raise DatasetError(
            f"{name}: {len(data)} bytes is not a whole number of {RECORD_BYTES}-byte records "
            f"(truncated or not a CIFAR-10 binary file)"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    bad = np.flatnonzero(labels >= NUM_LABELS)
    if bad.size:
        raise DatasetError(f"{name}: record {int(bad[0])} has label {int(labels[bad[0]])}, not 0-9")
    images = np.ascontiguousarray(records[:, 1:]).reshape(-1, 3, 32, 32)
    return ImageSet(images, labels)


def _concat(sets: list[ImageSet]) -> ImageSet:
    return ImageSet(np.concatenate([s.images for s in sets]), np.concatenate([s.labels for s in sets]))


def _batch_reader(path: Path) -> tuple[Callable[[str], bytes], Callable[[], None]]:
    """A function reading one batch file's bytes from ``path`` (a tarball, the batches folder or
    a folder holding either), and a function closing what it opened."""
    if path.is_dir():
        for candidate in (path / FOLDER, path / TARBALL):
            if candidate.exists():
                return _batch_reader(candidate)
        folder = path

        def read_file(name: str) -> bytes:
            file = folder / name
            if not file.is_file():
                raise DatasetError(f"{file}: missing (expected the CIFAR-10 binary batches {', '.join(BATCH_FILES)})")
            return file.read_bytes()

        return read_file, lambda: None
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    try:
        archive = tarfile.open(path, "r:*")
    except tarfile.TarError as error:
        raise DatasetError(f"{path}: not a CIFAR-10 tarball ({error})") from None

    def read_member(name: str) -> bytes:
        try:
            member = archive.extractfile(f"{FOLDER}/{name}")
        except KeyError:
            member = None
        if member is None:
            raise DatasetError(f"{path}: no {FOLDER}/{name} in the tarball")
        try:
            return member.read()
        except (tarfile.TarError, EOFError, OSError) as error:
            raise DatasetError(f"{path}: {name} cannot be read ({error})") from None

    return read_member, archive.close


def load_cifar10(path: str | os.PathLike[str]) -> Cifar10:
    """The four sets from ``path``: ``cifar-10-binary.tar.gz``, the extracted
    ``cifar-10-batches-bin`` folder, or a folder holding either."""
    read, close = _batch_reader(Path(path))
    try:
        batches = {name: decode_batch(read(name), name) for name in BATCH_FILES}
    finally:
        close()
    return Cifar10(
        train=_concat([batches[name] for name in TRAIN_FILES]),
        valid=batches[VALID_FILE],
        test=batches[TEST_FILE],
        train_eval=batches[TRAIN_FILES[0]],
    )


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def download_cifar10(
    directory: str | os.PathLike[str],
    url: str = URL,
    md5: str = MD5,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download the binary tarball into ``directory``, check its MD5 and unpack it; returns the
    ``cifar-10-batches-bin`` folder.

    Both steps are atomic: the tarball appears only once complete and checked, the folder only
    once every batch is extracted and decodes. An existing tarball with the right MD5 is reused.
    ``progress(done, total)`` is called as bytes arrive.
    """
    directory = Path(directory)
    tarball, folder = directory / TARBALL, directory / FOLDER
    if not (tarball.is_file() and file_md5(tarball) == md5):
        with atomic_output(tarball) as temporary:
            _fetch(url, temporary, progress, timeout)
            found = file_md5(temporary)
            if found != md5:
                raise DatasetError(
                    f"{url}: MD5 {found} does not match the published {md5} (download corrupt or wrong file)"
                )
    if not folder.is_dir():
        unpack(tarball, folder)
    return folder


def _fetch(url: str, target: Path, progress: Callable[[int, int | None], None] | None, timeout: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except OSError as error:  # URLError, HTTPError, timeouts
        raise DatasetError(f"{url}: download failed ({getattr(error, 'reason', error)})") from None
    if total is not None and done != total:
        raise DatasetError(f"{url}: download truncated at {done} of {total} bytes")


def unpack(tarball: Path, folder: Path) -> None:
    """Extract the six batch files of ``tarball`` into ``folder`` atomically (a temporary folder
    beside it, renamed when complete). Only those regular files are written, whatever else the
    archive holds."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        read, close = _batch_reader(tarball)
        try:
            for name in BATCH_FILES:
                data = read(name)
                decode_batch(data, name)
                (temporary / name).write_bytes(data)
        finally:
            close()
        os.replace(temporary, folder)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
