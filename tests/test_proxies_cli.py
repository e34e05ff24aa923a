"""``nbcompile proxies``: the table, its settings, and bad input refused before any file is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cifar_files import write_folder
from cli_runner import assert_one_line_error, invoke
from click.testing import Result
from example_cells import INCEPTION_JSON as INCEPTION

from nbcompile.compiler.config import NetworkConfig
from nbcompile.proxies.names import PROXY_NAMES
from nbcompile.proxies.runner import ProxyScorer, cifar10_batch
from nbcompile.proxies.table import read_table
from nbcompile.space.spec import ModelSpec

TINY_FLAGS = ["--stem-channels", "8", "--num-stacks", "1", "--cells-per-stack", "1"]
TINY = NetworkConfig(stem_channels=8, num_stacks=1, cells_per_stack=1)


def run(*args: str) -> Result:
    """``nbcompile proxies ARGS``, scoring in this process."""
    return invoke(["proxies", *args, "--workers", "1"])


def assert_refused(result: Result, out: Path, *fragments: str) -> None:
    """Exit 2, one error line naming every fragment, and no file (nor temporary, nor work folder) left."""
    assert_one_line_error(result, *fragments)
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*"))
    assert not Path(f"{out}.work").exists()


@pytest.fixture(scope="module")
def cifar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six synthetic batch files of 64 images: 256 training images."""
    return write_folder(tmp_path_factory.mktemp("cifar") / "cifar-10-batches-bin", images=64)


def test_the_table_holds_one_row_per_cell_and_the_settings(tmp_path: Path, cifar: Path) -> None:
    out = tmp_path / "scores.parquet"
    spec = ModelSpec.from_dict(json.loads(INCEPTION.read_text()))
    args = [str(INCEPTION), "--out", str(out), "--data", str(cifar), "--batch-size", "8", "--seed", "3", *TINY_FLAGS]
    result = run(*args)
    assert result.exit_code == 0, result.output
    columns, settings = read_table(out)
    assert list(columns) == ["module_hash", *PROXY_NAMES]
    assert columns["module_hash"] == [spec.module_hash]
    expected = ProxyScorer(PROXY_NAMES, cifar10_batch(cifar, 8, 3), TINY, seed=3).score(spec)
    assert {name: columns[name][0] for name in PROXY_NAMES} == expected
    assert settings["seed"] == 3 and settings["batch_size"] == 8 and settings["config"]["stem_channels"] == 8
    assert settings["proxies"] == list(PROXY_NAMES) and settings["data"] == str(cifar.resolve())
    assert settings["labeling"] == "canonical" and "CIFAR-10" in settings["batch"]
    assert settings["chunk_size"] == 64 and settings["missing"] == [] and not Path(f"{out}.work").exists()


def test_a_sample_of_the_space_and_repeated_cells(tmp_path: Path) -> None:
    out, again = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert (
        run(str(INCEPTION), str(INCEPTION), "--sample", "3", "--proxies", "flops,params", "--out", str(out)).exit_code
        == 0
    )
    assert run("--sample", "3", "--proxies", "params", "--out", str(again)).exit_code == 0
    columns, settings = read_table(out)
    assert list(columns) == ["module_hash", "params", "flops"] and len(columns["module_hash"]) == 4
    assert len(set(columns["module_hash"])) == 4  # the inception cell once
    assert read_table(again)[0]["module_hash"] == columns["module_hash"][1:]
    assert settings["data"] is None


def test_without_data_the_batch_is_noise_and_said_so(tmp_path: Path) -> None:
    out = tmp_path / "noise.parquet"
    result = run(str(INCEPTION), "--proxies", "nwot", "--batch-size", "4", "--out", str(out), *TINY_FLAGS)
    assert result.exit_code == 0 and "no --data" in result.stderr
    assert "noise" in read_table(out)[1]["batch"]


def test_bad_input_is_refused_before_any_file(tmp_path: Path, cifar: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "t.parquet"
    spec = str(INCEPTION)
    assert_refused(run(spec, "--proxies", "snip,naswot", "--out", str(out)), out, "--proxies", "'naswot'")
    assert_refused(run(spec, "--data", str(cifar), "--batch-size", "300", "--out", str(out)), out, "300", "256")
    assert_refused(run(spec, "--out", str(tmp_path / "t.csv")), tmp_path / "t.csv", ".parquet")
    assert_refused(run("--out", str(out)), out, "no cells")
    assert_refused(run(spec, "--batch-size", "1", "--out", str(out)), out, "at least 2")
    assert_refused(run(spec, "--device", "tpu", "--out", str(out)), out, "--device")
    (tmp_path / "file").write_text("")
    blocked = tmp_path / "file" / "t.parquet"
    assert_refused(run(spec, "--out", str(blocked)), blocked, "--out", "not a folder")

    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real_find_spec(name, *a)
    )
    assert_refused(run(spec, "--out", str(out)), out, "pyarrow", "nbcompile[parquet]")


def test_a_failure_while_writing_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.parquet as pq

    def broken(table, where, **kwargs):
        Path(where).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    out = tmp_path / "t.parquet"
    result = run(str(INCEPTION), "--proxies", "params", "--out", str(out))
    assert result.exit_code != 0 and not out.exists() and not list(tmp_path.glob(".t.parquet.*"))


def test_module_hashes_are_looked_up_in_the_dataset(tmp_path: Path) -> None:
    from nbcompile.space.enumeration import enumerate_cells
    from nbcompile.synthetic.fixture import write_fixture

    cells = list(enumerate_cells(max_vertices=3, workers=1))[:3]
    dataset = tmp_path / "nasbench_synthetic.tfrecord"
    write_fixture(dataset, cells)
    out = tmp_path / "t.parquet"
    hashes = [cell.module_hash for cell in reversed(cells)]
    common = ["--proxies", "params", "--out", str(out), "--dataset", str(dataset), "--cache-dir", str(tmp_path / "c")]
    result = run(*hashes, *common)
    assert result.exit_code == 0, result.output
    columns, _ = read_table(out)
    assert columns["module_hash"] == hashes
    assert columns["params"][-1] == 882_570  # cells[0]: input → output only


def test_the_cifar10_batch_is_augmented_training_images_drawn_without_replacement(cifar: Path) -> None:
    import torch

    from nbcompile.train.cifar10 import load_cifar10
    from nbcompile.train.data import MEAN, STD

    train = load_cifar10(cifar).train
    whole = cifar10_batch(cifar, len(train), seed=1)
    assert sorted(whole.labels.tolist()) == sorted(train.labels.tolist())
    assert not torch.equal(whole.images, cifar10_batch(cifar, len(train), seed=2).images)
    batch = cifar10_batch(cifar, 4, seed=1)
    assert torch.equal(batch.labels, whole.labels[:4])  # the same draw; the augmentation depends on the size
    # Every image is a 32×32 window, flipped or not, of a zero-padded training image of its label.
    pixels = batch.images * torch.tensor(STD).reshape(1, 3, 1, 1) + torch.tensor(MEAN).reshape(1, 3, 1, 1)
    pixels = pixels.round().to(torch.uint8)
    padded = torch.nn.functional.pad(torch.from_numpy(train.images), (4, 4, 4, 4))
    for image, label in zip(pixels, batch.labels.tolist()):
        windows = [padded[:, :, r : r + 32, c : c + 32] for r in range(9) for c in range(9)]
        found = {
            int(train.labels[i])
            for window in windows
            for candidate in (image, image.flip(-1))
            for i in torch.nonzero((window == candidate).flatten(1).all(1)).flatten().tolist()
        }
        assert label in found  # (the synthetic images are shifts of one another: several may match)
