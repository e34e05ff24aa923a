"""``nbcompile search``: a run end to end with plots and the best cell compiled, bad input refused
in one line before the dataset is opened, and a run on a dataset that random draws rarely hit."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as parquet
from cli_runner import assert_one_line_error, invoke

from nbcompile.nasbench import NASBench
from nbcompile.search import optimizer
from nbcompile.space.enumeration import enumerate_cells, sample_cells
from nbcompile.synthetic.fixture import ONLY_108, write_fixture


def test_cli_search_emits_the_best_cell(tmp_path) -> None:
    from nbcompile.runtime.loader import load_model_class

    cells = tmp_path / "only_known_synthetic.tfrecord"  # every query hits: only cells of <= 4 vertices
    write_fixture(cells, list(enumerate_cells(max_vertices=4, workers=1)), ONLY_108)
    out = tmp_path / "out"
    args = [
        "search",
        "--dataset",
        str(cells),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--algo",
        "random,evolution,local",
        "--repeats",
        "2",
        "--budget",
        "40",
        "--budget-kind",
        "queries",
        "--population-size",
        "5",
        "--tournament-size",
        "2",
        "--out",
        str(out),
        "--plot",
        "--emit-best",
        str(tmp_path / "models"),
        "--workers",
        "1",
    ]
    # a tiny space: 4-vertex random cells are rare, so draw from what exists
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC" in result.stdout and "evolution" in result.stdout
    rows = parquet.read_table(out / "evaluations.parquet").to_pylist()
    assert {(r["algorithm"], r["trial"]) for r in rows} == {
        (a, t) for a in ("random", "evolution", "local") for t in (0, 1)
    }
    summary = json.loads((out / "summary.json").read_text())
    assert [row["trials"] for row in summary["algorithms"]] == [2, 2, 2]
    for name in ("regret_time.png", "regret_ecdf.png", "regret_queries.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    model_path = Path(result.stdout.strip().splitlines()[-1])
    best = max((r for r in rows if r["valid"]), key=lambda r: r["validation_accuracy"])
    assert best["module_hash"][:12] in model_path.name
    bench = NASBench(cells, cache_dir=tmp_path / "cache")
    stored = bench.get_metrics_from_hash(best["module_hash"])[0]["trainable_parameters"]
    network = load_model_class(model_path)()
    assert sum(p.numel() for p in network.parameters()) == stored


def test_cli_search_bad_input(small_only108, tmp_path) -> None:
    base = ["search", "--dataset", str(small_only108), "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "o")]
    for extra, message in (
        (["--algo", "bogus"], "unknown algorithm 'bogus'"),
        (["--budget", "-1"], "must be a positive, finite number"),
        (["--epochs", "12"], "invalid number of epochs 12"),
    ):
        assert_one_line_error(invoke(base + extra), message)  # after the first load's lines, for --epochs
    assert not (tmp_path / "o").exists()


def test_search_refuses_before_opening_the_dataset(small_only108, tmp_path) -> None:
    cache = tmp_path / "cache"
    base = ["search", "--dataset", str(small_only108), "--cache-dir", str(cache)]
    out = ["--out", str(tmp_path / "o")]
    for args, fragment in [
        ([*base, "--out", "/dev/null/s"], "--out /dev/null/s: /dev/null is not a folder"),
        ([*base, *out, "--emit-best", "/dev/null/m"], "--emit-best /dev/null/m: /dev/null is not a folder"),
        ([*base, *out, "--budget", "inf"], "--budget inf must be a positive, finite number"),
        ([*base, *out, "--budget", "nan"], "must be a positive, finite number"),
        ([*base, *out, "--algo", ","], "no algorithm given"),
        ([*base, "--out", str(small_only108)], "is a file"),
    ]:
        assert_one_line_error(invoke(args), fragment)
        assert not cache.exists(), args  # the dataset was not opened
    assert not (tmp_path / "o").exists()


def test_search_refuses_an_impossible_dedupe_budget(small_only108, tmp_path) -> None:
    args = [
        "search",
        "--dataset",
        str(small_only108),
        "--cache-dir",
        str(tmp_path / "c"),
        "--out",
        str(tmp_path / "o"),
        "--dedupe",
        "--budget-kind",
        "queries",
        "--budget",
        "1e9",
    ]
    assert_one_line_error(invoke(args), "--budget 1e+09 queries with --dedupe: the dataset has only 12 cells")
    assert not (tmp_path / "o").exists()


def test_search_on_a_partial_dataset_ends_with_a_note(tmp_path, monkeypatch) -> None:
    """Ten 7-vertex cells: random draws (almost) never meet one."""
    monkeypatch.setattr(optimizer, "FRESH_ATTEMPTS", 1000)
    partial = tmp_path / "partial_synthetic.tfrecord"
    write_fixture(partial, sample_cells(400)[-10:], ONLY_108)
    out = tmp_path / "out"
    result = invoke(
        [
            "search",
            "--dataset",
            str(partial),
            "--cache-dir",
            str(tmp_path / "c"),
            "--out",
            str(out),
            "--budget",
            "50",
            "--budget-kind",
            "queries",
            "--repeats",
            "1",
            "--algo",
            "random",
            "--workers",
            "1",
        ]
    )
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stdout.splitlines() if line.startswith("note: 1 trials ended before")]
    assert len(notes) == 1 and "no cell worth a query in 1,000 draws" in notes[0]
    rows = parquet.read_table(out / "evaluations.parquet").to_pylist()
    assert len(rows) < 51 and json.loads((out / "summary.json").read_text())["ended_early"]["random-00000"]
