"""A module hash in place of a spec file: compile, info, bench and data query look it up in the
dataset named with --dataset, and say so when there is none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import invoke, not_loading_lines
from example_cells import CHAIN, CONV3X3, INCEPTION_HASH, INPUT, OUTPUT


def test_compile_a_module_hash_from_the_dataset(small_only108, nasbench, tmp_path) -> None:
    from nbcompile.runtime.loader import load_model_class

    module_hash = INCEPTION_HASH
    spec_file = tmp_path / "chain.json"
    spec_file.write_text(json.dumps({"matrix": CHAIN, "ops": [INPUT, CONV3X3, OUTPUT]}))
    result = invoke(
        [
            "compile",
            module_hash,
            str(spec_file),
            "--dataset",
            str(small_only108),
            "--cache-dir",
            str(tmp_path / "c"),
            "-o",
            str(tmp_path / "models"),
        ]
    )
    assert result.exit_code == 0, result.output
    written = result.stdout.split()
    assert len(written) == 2 and module_hash[:12] in written[0]
    import torch

    with torch.device("meta"):  # shapes only: no weight initialisation
        network = load_model_class(written[0])()
    assert (
        sum(p.numel() for p in network.parameters()) == nasbench.fixed_statistics[module_hash]["trainable_parameters"]
    )


def test_compile_a_module_hash_needs_the_dataset(small_only108, tmp_path) -> None:
    module_hash = "0123456789abcdef0123456789abcdef"
    result = invoke(["compile", module_hash, "-o", str(tmp_path / "models")])
    assert result.exit_code == 2
    assert (
        result.stderr == f"nbcompile: error: {module_hash}: no such file; "
        "to compile a module hash, name the dataset with --dataset FILE\n"
    )
    absent = invoke(
        [
            "compile",
            module_hash,
            "--dataset",
            str(small_only108),
            "--cache-dir",
            str(tmp_path / "c"),
            "-o",
            str(tmp_path / "m"),
        ]
    )
    assert absent.exit_code == 2 and not_loading_lines(absent.stderr) == [
        f"nbcompile: error: module hash '{module_hash}' is not in {small_only108}"
    ]
    assert not (tmp_path / "models").exists() and not (tmp_path / "m").exists()


def test_info_bench_and_query_take_a_module_hash_from_the_dataset(small_only108, tmp_path, monkeypatch) -> None:

    module_hash = INCEPTION_HASH
    cache = ["--cache-dir", str(tmp_path / "c")]
    info = invoke(["info", module_hash, "--dataset", str(small_only108), *cache, "--json"])
    assert info.exit_code == 0, info.output
    assert json.loads(info.stdout)["module_hash"] == module_hash
    bench_json = tmp_path / "bench.json"
    fast = ["--modes", "dynamic", "--batch-sizes", "1", "--warmup", "0", "--iters", "1", "--rounds", "1", "--no-peak"]
    small = ["--image-size", "8", "--stem-channels", "16", "--num-stacks", "1", "--cells-per-stack", "1"]
    bench = invoke(
        ["bench", module_hash, "--dataset", str(small_only108), *cache, *fast, *small, "--json", str(bench_json)]
    )
    assert bench.exit_code == 0, bench.output
    assert [row["cell"] for row in json.loads(bench_json.read_text())["results"]] == [module_hash]
    # a file named like a hash is read as a file, by every command
    monkeypatch.chdir(tmp_path)
    Path(module_hash).write_text(json.dumps({"matrix": CHAIN, "ops": [INPUT, CONV3X3, OUTPUT]}))
    query = invoke(["data", "query", str(small_only108), module_hash, *cache, "--json"])
    assert query.exit_code == 2 and "is valid but not in" in query.stderr and module_hash not in query.stderr


@pytest.mark.parametrize("command", ["info", "bench"])
def test_info_and_bench_need_the_dataset_for_a_module_hash(command, tmp_path) -> None:
    module_hash = "0123456789abcdef0123456789abcdef"
    result = invoke([command, module_hash])
    verb = "report on" if command == "info" else command
    assert result.exit_code == 2 and result.stderr == (
        f"nbcompile: error: {module_hash}: no such file; "
        f"to {verb} a module hash, name the dataset with --dataset FILE\n"
    )
