"""``nbcompile data``: convert, info and query on small fixtures, and bad input refused in one line
before any work."""

from __future__ import annotations

import json
import os
import shutil
import warnings

import numpy as np
import pytest
from cli_runner import assert_one_line_error, invoke, not_loading_lines
from example_cells import INCEPTION, INCEPTION_HASH, INCEPTION_JSON

from nbcompile.nasbench import NASBench
from nbcompile.nasbench import cache as cache_module


def test_cli_convert_info_query(only108, tmp_path) -> None:
    cache = str(tmp_path / "cache")
    converted = invoke(["data", "convert", str(only108), "--cache-dir", cache])
    assert converted.exit_code == 0, converted.output
    assert "converted: 41 cells, 123 records" in converted.stderr
    again = invoke(["data", "convert", str(only108), "--cache-dir", cache])
    assert "found in the cache" in again.stderr and again.stdout == converted.stdout
    info = invoke(["data", "info", str(only108), "--cache-dir", cache, "--json"])
    data = json.loads(info.stdout)
    assert data["cells"] == 41 and data["records"] == 123 and data["epochs"] == [108] and data["repeats"] == [3]
    bench = NASBench(only108, cache_dir=cache)
    valid = np.nanmean(bench.tables.metrics[:, 0, :, 6], axis=1)
    best = data["budgets"][0]["best_mean_validation"]
    assert best["validation_accuracy"] == pytest.approx(valid.max())
    assert best["module_hash"] == bench.tables.hashes[int(valid.argmax())].decode()
    assert "best mean test" in invoke(["data", "info", str(only108), "--cache-dir", cache]).stdout
    query = invoke(["data", "query", str(only108), str(INCEPTION_JSON), "--cache-dir", cache, "--json", "--mean"])
    result = json.loads(query.stdout)
    assert result["trainable_parameters"] == 2_694_282 and result["module_hash"] == INCEPTION_HASH
    assert result["test_accuracy"] == pytest.approx(bench.query(INCEPTION, reduce="mean")["test_accuracy"])
    by_hash = invoke(["data", "query", str(only108), INCEPTION_HASH, "--cache-dir", cache, "--seed", "1"])
    assert by_hash.exit_code == 0 and "trainable_parameters  2,694,282" in by_hash.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "query", "{data}", "0" * 32], "is not in"),
        (["data", "query", "{data}", "{spec}", "--epochs", "12"], "invalid number of epochs 12"),
        (["data", "info", "{missing}"], "no such file"),
        (["data", "info", "{bad}"], "bad CRC of the payload"),
    ],
)
def test_cli_bad_input(only108, tmp_path, args, message) -> None:
    bad = tmp_path / "bad.tfrecord"
    data = bytearray(only108.read_bytes())
    data[40] ^= 1
    bad.write_bytes(bytes(data))
    names = {
        "data": str(only108),
        "spec": str(INCEPTION_JSON),
        "missing": str(tmp_path / "nope.tfrecord"),
        "bad": str(bad),
    }
    result = invoke([*[a.format(**names) for a in args], "--cache-dir", str(tmp_path / "cache")])
    # the first load's two progress lines may come first; the error is one line, the last
    assert_one_line_error(result, message)
    assert not_loading_lines(result.stderr) == [result.stderr.strip().splitlines()[-1]]


def test_data_info_without_warnings_and_with_empty_budgets(missing_runs, tmp_path) -> None:
    path, cells = missing_runs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning
        result = invoke(["data", "info", str(path), "--json", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0 and not_loading_lines(result.stderr) == [], result.output
    budgets = {b["epochs"]: b for b in json.loads(result.stdout)["budgets"]}
    assert budgets[4]["cells_without_runs"] == 1 and budgets[108]["cells_without_runs"] == 0
    assert budgets[4]["runs"] == 3 * (len(cells) - 1)
    assert budgets[4]["best_mean_validation"]["module_hash"] not in (cells[0].module_hash, cells[1].module_hash)

    # a budget whose accuracies are all NaN: a cache folder with its metrics changed consistently
    folder = NASBench(path, cache_dir=tmp_path).cache_folder
    nan_cache = tmp_path / "nan_cache"
    shutil.copytree(folder, nan_cache)
    metrics = np.load(nan_cache / "metrics.npy")
    metrics[:, 0] = np.nan
    np.save(nan_cache / "metrics.npy", metrics, allow_pickle=False)
    manifest = json.loads((nan_cache / "manifest.json").read_text())
    manifest["arrays"]["metrics"] = cache_module.array_entry(metrics)
    (nan_cache / "manifest.json").write_text(json.dumps(manifest))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = invoke(["data", "info", str(nan_cache)])
        data = json.loads(invoke(["data", "info", str(nan_cache), "--json"]).stdout)
    assert text.exit_code == 0 and "  4 epochs, best mean validation:  none" in text.stdout, text.output
    assert "  4 epochs: 1 cells have no run" in text.stdout
    assert data["budgets"][0]["best_mean_test"] is None and data["budgets"][1]["best_mean_test"] is not None


def test_data_commands_refuse_before_work(small_only108, tmp_path) -> None:
    cache = tmp_path / "cache"
    assert_one_line_error(
        invoke(["data", "query", str(small_only108), str(tmp_path / "nope.json"), "--cache-dir", str(cache)]),
        "no such file",
    )
    assert not cache.exists()
    assert_one_line_error(
        invoke(["data", "fixture", str(tmp_path / "plain.tfrecord"), "--cells", "150000"]), "must contain 'synthetic'"
    )
    assert_one_line_error(invoke(["data", "fixture", "/dev/null/x_synthetic.tfrecord"]), "/dev/null is not a folder")
    fifo = tmp_path / "fifo.tfrecord"
    os.mkfifo(fifo)
    assert_one_line_error(invoke(["data", "info", str(fifo), "--cache-dir", str(cache)]), "not a regular file")
