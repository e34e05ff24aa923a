"""CIFAR-10 binary reader and downloader against hand-made files, and the on-device pipeline."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from cifar_files import (
    BATCHES,
    batch_bytes,
    label_of,
    pixel_value,
    tarball_bytes,
    write_folder,
)
from cli_runner import assert_one_line_error, invoke

from nbcompile.errors import DatasetError
from nbcompile.train import cifar10
from nbcompile.train.data import (
    MEAN,
    STD,
    BatchStream,
    DeviceImages,
    augment,
    eval_batches,
)

# --- reader -----------------------------------------------------------------------------------


def test_decode_batch_places_label_and_planes_as_the_format_says():
    data = batch_bytes(2, 3)
    assert len(data) == 3 * 3073
    decoded = cifar10.decode_batch(data, "x.bin")
    assert decoded.labels.tolist() == [label_of(2, i) for i in range(3)]
    assert decoded.images.shape == (3, 3, 32, 32) and decoded.images.dtype == np.uint8
    for i, c, y, x in [(0, 0, 0, 0), (1, 2, 31, 31), (2, 1, 5, 17), (0, 2, 0, 1)]:
        assert decoded.images[i, c, y, x] == pixel_value(i, c, y, x)


def test_record_layout_from_literal_bytes():
    record = bytes([9]) + bytes([1]) * 1024 + bytes([2]) * 1024 + bytes([3]) * 1024
    decoded = cifar10.decode_batch(record, "one.bin")
    assert decoded.labels.tolist() == [9]
    assert [int(decoded.images[0, c].min()) for c in range(3)] == [1, 2, 3]
    assert [int(decoded.images[0, c].max()) for c in range(3)] == [1, 2, 3]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty file"),
        (batch_bytes(0, 2)[:-1], "not a whole number of 3073-byte records"),
        (batch_bytes(0, 2) + b"\0" * 100, "not a whole number"),
        (bytes([10]) + bytes(3072), "record 0 has label 10"),
    ],
)
def test_bad_batch_bytes_name_the_file_and_the_fault(data, message):
    with pytest.raises(DatasetError, match=message) as info:
        cifar10.decode_batch(data, "data_batch_3.bin")
    assert "data_batch_3.bin" in str(info.value)


def _check_split(data: cifar10.Cifar10, images: int) -> None:
    assert len(data.train) == 4 * images and len(data.valid) == len(data.test) == len(data.train_eval) == images
    # train = batches 1-4 in order, valid = batch 5, test = test batch, train_eval = batch 1
    assert data.train.labels[images : images + 3].tolist() == [label_of(1, i) for i in range(3)]
    assert data.valid.labels[:3].tolist() == [label_of(4, i) for i in range(3)]
    assert data.test.labels[:3].tolist() == [label_of(5, i) for i in range(3)]
    np.testing.assert_array_equal(data.train_eval.images, data.train.images[:images])


@pytest.mark.parametrize("layout", ["batches folder", "parent of folder", "tarball", "parent of tarball"])
def test_every_layout_reads_the_same(tmp_path, layout):
    if layout in ("batches folder", "parent of folder"):
        write_folder(tmp_path / "cifar-10-batches-bin", 8)
        path = tmp_path / "cifar-10-batches-bin" if layout == "batches folder" else tmp_path
    else:
        (tmp_path / "cifar-10-binary.tar.gz").write_bytes(tarball_bytes(8))
        path = tmp_path / "cifar-10-binary.tar.gz" if layout == "tarball" else tmp_path
    _check_split(cifar10.load_cifar10(path), 8)


def test_missing_and_broken_files(tmp_path):
    folder = write_folder(tmp_path / "cifar-10-batches-bin", 4)
    (folder / "test_batch.bin").unlink()
    with pytest.raises(DatasetError, match=r"test_batch\.bin: missing"):
        cifar10.load_cifar10(folder)
    (folder / "test_batch.bin").write_bytes(batch_bytes(5, 4)[:5000])
    with pytest.raises(DatasetError, match=r"test_batch\.bin: 5000 bytes"):
        cifar10.load_cifar10(folder)
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(DatasetError, match="not a CIFAR-10 tarball"):
        cifar10.load_cifar10(tmp_path / "junk.tar.gz")
    with pytest.raises(DatasetError, match="no such file"):
        cifar10.load_cifar10(tmp_path / "absent.tar.gz")


# --- downloader ---------------------------------------------------------------------------------


@contextlib.contextmanager
def serve(folder: Path):
    """A static file server on 127.0.0.1 (a free port) for the block's duration."""
    handler = partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def served_tarball(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    data = tarball_bytes(4, extra={"cifar-10-batches-bin/../../escape.bin": b"x", "readme.html": b"<p>"})
    (site / "cifar-10-binary.tar.gz").write_bytes(data)
    with serve(site) as base:
        yield f"{base}/cifar-10-binary.tar.gz", hashlib.md5(data).hexdigest()


def test_official_address_and_checksum():
    assert cifar10.URL == "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    assert cifar10.MD5 == "c32a1d4ab5d03f1284b67883e8d87530"


def test_download_checks_md5_and_unpacks_only_the_batches(served_tarball, tmp_path):
    url, md5 = served_tarball
    target = tmp_path / "data"
    folder = cifar10.download_cifar10(target, url, md5)
    assert folder == target / "cifar-10-batches-bin"
    assert sorted(p.name for p in folder.iterdir()) == sorted(BATCHES)
    assert sorted(p.name for p in target.iterdir()) == ["cifar-10-batches-bin", "cifar-10-binary.tar.gz"]
    assert not (tmp_path / "escape.bin").exists()
    _check_split(cifar10.load_cifar10(target), 4)
    # a second call reuses both (the server is not needed)
    assert cifar10.download_cifar10(target, "http://127.0.0.1:9/none", md5) == folder


def test_wrong_md5_leaves_nothing(served_tarball, tmp_path):
    url, _ = served_tarball
    target = tmp_path / "data"
    with pytest.raises(DatasetError, match="does not match the published 0123"):
        cifar10.download_cifar10(target, url, "0123" + "0" * 28)
    assert list(target.iterdir()) == []


def test_unreachable_address_is_a_dataset_error(tmp_path, served_tarball):
    url, md5 = served_tarball
    with pytest.raises(DatasetError, match="download failed"):
        cifar10.download_cifar10(tmp_path / "d", url.replace("cifar-10-binary", "absent"), md5)
    assert list((tmp_path / "d").iterdir()) == []


def test_unpack_of_a_bad_tarball_leaves_no_folder(tmp_path):
    (tmp_path / "t.tar.gz").write_bytes(tarball_bytes(2, extra={"cifar-10-batches-bin/test_batch.bin": b"short"}))
    with pytest.raises(DatasetError, match=r"test_batch\.bin: 5 bytes"):
        cifar10.unpack(tmp_path / "t.tar.gz", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.tar.gz"]


def test_cli_downloads_and_reports_bad_md5_in_one_line(served_tarball, tmp_path):
    url, md5 = served_tarball
    ok = invoke(["data", "cifar10", str(tmp_path / "a"), "--url", url, "--md5", md5])
    assert ok.exit_code == 0, ok.stderr
    assert ok.stdout.strip() == str(tmp_path / "a" / "cifar-10-batches-bin")
    assert_one_line_error(invoke(["data", "cifar10", str(tmp_path / "b"), "--url", url, "--md5", "f" * 32]), "MD5")


# --- on-device pipeline -------------------------------------------------------------------------


def _normalized(value: float, channel: int) -> float:
    return (value - MEAN[channel]) / STD[channel]


def test_augment_is_a_padded_crop_maybe_flipped_and_padding_ends_at_minus_mean_over_std():
    n = 300
    rows = np.arange(32)[:, None] * np.ones(32, dtype=int)
    image = np.stack([rows * 5 + 10, rows.T * 5 + 10, np.full((32, 32), 200)]).astype(np.uint8)  # position-coded
    images = torch.from_numpy(np.repeat(image[None], n, axis=0))
    out = augment(images, torch.Generator().manual_seed(1)).numpy()
    padded = np.pad(image.astype(np.float64), ((0, 0), (4, 4), (4, 4)))
    expected = (padded - np.array(MEAN)[:, None, None]) / np.array(STD)[:, None, None]
    keys, windows = [], []
    for dy in range(9):
        for dx in range(9):
            window = expected[:, dy : dy + 32, dx : dx + 32]
            keys += [(dy, dx, False), (dy, dx, True)]
            windows += [window, window[:, :, ::-1]]
    stacked = np.stack(windows)
    seen = []
    for crop in out:
        match = np.flatnonzero(np.abs(stacked - crop).max(axis=(1, 2, 3)) < 1e-4)
        assert match.size, "an output is not a window of the padded image"
        seen.append(keys[match[0]])
    assert {dy for dy, _, _ in seen} == set(range(9)) and {dx for _, dx, _ in seen} == set(range(9))
    flipped = sum(flip for _, _, flip in seen)
    assert 0.4 * n < flipped < 0.6 * n
    assert np.isclose(out.min(axis=(0, 2, 3)), [_normalized(0, c) for c in range(3)]).all()


def test_batch_stream_shuffles_whole_epochs_and_batches_cross_them():
    data = DeviceImages(torch.zeros(10, 3, 32, 32, dtype=torch.uint8), torch.arange(10))
    stream = BatchStream(data, 4, torch.Generator().manual_seed(0))
    drawn = torch.cat([stream.indices() for _ in range(10)]).tolist()  # 40 indices = 4 epochs
    for epoch in range(4):
        assert sorted(drawn[epoch * 10 : epoch * 10 + 10]) == list(range(10))
    assert drawn[:10] != drawn[10:20]


def test_eval_batches_cover_len_floor_batch():
    data = DeviceImages(torch.zeros(10_000, 3, 32, 32, dtype=torch.uint8), torch.zeros(10_000, dtype=torch.int64))
    batches = list(eval_batches(data, 256))
    assert len(batches) == 39 and sum(len(labels) for _, labels in batches) == 9_984
