"""Synthetic CIFAR-10 *binary* files for the training tests, written byte by byte.

Imported as ``from cifar_files import ...`` (``tests/`` is on ``sys.path`` under pytest). A
record is one label byte and 3,072 pixel bytes: the red plane, then green, then blue, each
32 rows of 32. Pixel (c, y, x) of image i is ``pixel_value(i, c, y, x)``. ``synthetic_data`` is
the in-memory counterpart: a data set of random images, no file.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

BATCHES = (
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
)


def pixel_value(image: int, channel: int, row: int, col: int) -> int:
    return (image * 7 + channel * 50 + row * 3 + col) % 256


def label_of(batch: int, image: int) -> int:
    return (batch * 3 + image) % 10


def batch_bytes(batch: int, images: int) -> bytes:
    """The bytes of one ``*.bin`` file, built record by record with plain Python."""
    out = bytearray()
    for i in range(images):
        out.append(label_of(batch, i))
        for c in range(3):
            for y in range(32):
                out.extend(pixel_value(i, c, y, x) for x in range(32))
    return bytes(out)


def write_folder(folder: Path, images: int = 64) -> Path:
    """``folder`` filled with the six batch files of ``images`` images each."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(BATCHES):
        (folder / name).write_bytes(batch_bytes(index, images))
    return folder


def tarball_bytes(images: int = 64, extra: dict[str, bytes] | None = None) -> bytes:
    """A ``cifar-10-binary.tar.gz`` holding ``cifar-10-batches-bin/<batch>`` (and ``extra`` members)."""
    members = {f"cifar-10-batches-bin/{name}": batch_bytes(i, images) for i, name in enumerate(BATCHES)}
    members.update(extra or {})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def one_thread():
    """Run torch on one thread for a test module and restore the count after: on a shared
    2-core machine, several threads per process mostly wait for each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def synthetic_data(images: int = 64, seed: int = 0) -> Any:
    """An in-memory Cifar10 of random images: 4 × ``images`` to train on, ``images`` in each of the
    other splits (the training evaluation is on the first ``images`` training images)."""
    import numpy as np

    from nbcompile.train.cifar10 import Cifar10, ImageSet

    rng = np.random.default_rng(seed)

    def one(n: int) -> ImageSet:
        return ImageSet(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n))

    train = one(4 * images)
    return Cifar10(train, one(images), one(images), ImageSet(train.images[:images], train.labels[:images]))
