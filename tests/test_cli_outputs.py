"""Commands check where they will write before any work: an output under a file, in a folder
that cannot be written, or a cache folder that cannot be made is refused in one line, and nothing
is computed, converted or written."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_runner import assert_one_line_error, invoke
from example_cells import INCEPTION_JSON


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")
def test_enumerate_refuses_an_unwritable_output_before_enumerating() -> None:
    line = assert_one_line_error(
        invoke(["enumerate", "--out", "/proc/cells.npz"]), "--out /proc/cells.npz: cannot write in /proc"
    )
    assert ".tmp" not in line


def test_compile_refuses_an_unwritable_out_dir() -> None:
    assert_one_line_error(
        invoke(["compile", str(INCEPTION_JSON), "-o", "/dev/null/models"]),
        "--out-dir /dev/null/models: /dev/null is not a folder",
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["train", "{spec}", "--data", "{tmp}", "--no-plot", "--out", "/dev/null/o"], "--out /dev/null/o: "),
        (["train-merge", "/dev/null/x.tfrecord", "{tmp}"], "OUT /dev/null/x.tfrecord: "),
        (["data", "cifar10", "/dev/null/c", "--url", "file:///nowhere", "--md5", "0"], "DIRECTORY /dev/null/c: "),
    ],
    ids=["train", "train-merge", "data cifar10"],
)
def test_train_and_cifar10_refuse_an_unwritable_output_first(tmp_path, args, line) -> None:
    args = [arg.replace("{spec}", str(INCEPTION_JSON)).replace("{tmp}", str(tmp_path)) for arg in args]
    assert_one_line_error(invoke(args), line + "/dev/null is not a folder")


def test_convert_refuses_a_cache_folder_it_cannot_write_before_converting(small_only108, tmp_path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = invoke(["data", "convert", str(small_only108), "--cache-dir", str(blocker / "cache")])
    assert_one_line_error(result, "--cache-dir")
    assert "nbcompile: loading" not in result.stderr  # refused before the conversion started
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
