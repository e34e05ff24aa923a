"""nbcompile bench: tiny CPU runs that check the report's shape, never timings."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from cli_runner import assert_one_line_error, invoke
from example_cells import PER_STACK_TRUNCATION, TWO_VERTEX, TWO_VERTEX_JSON

from nbcompile import ModelSpec, NetworkConfig
from nbcompile.bench import modes as bench_modes
from nbcompile.bench.environment import cudnn_benchmark, inductor_cache_state
from nbcompile.bench.modes import MODES
from nbcompile.bench.report import plot_latency
from nbcompile.bench.runner import BenchSettings, add_ratios, run_benchmark
from nbcompile.bench.timing import Timing, matmul_peak_tflops, time_calls
from nbcompile.compiler.lower import lower

TINY = NetworkConfig(stem_channels=4, num_stacks=2, cells_per_stack=1)
CELLS = [("two_vertex", ModelSpec.from_dict(TWO_VERTEX)), ("truncation", ModelSpec.from_dict(PER_STACK_TRUNCATION))]


def tiny_settings(**overrides) -> BenchSettings:
    values = {
        "batch_sizes": (1, 2),
        "warmup": 0,
        "iters": 3,
        "max_seconds": 1.0,
        "rounds": 2,
        "compile_backend": "eager",
        "image_size": 8,
        "measure_peak": False,
        "config": TINY,
    }
    values.update(overrides)
    return BenchSettings(**values)


def by_mode(report: dict, cell: str, batch: int) -> dict[str, dict]:
    return {r["mode"]: r for r in report["results"] if r["cell"] == cell and r["batch_size"] == batch}


def test_inference_report_has_every_mode_cell_and_batch() -> None:
    report = run_benchmark(CELLS, tiny_settings())
    assert len(report["results"]) == len(CELLS) * 2 * len(MODES)
    for cell, _ in CELLS:
        for batch in (1, 2):
            rows = by_mode(report, cell, batch)
            assert set(rows) == set(MODES)
            assert rows["static-cudagraph"]["status"] == "skipped"
            ok = {mode: row for mode, row in rows.items() if row["status"] == "ok"}
            assert set(ok) == set(MODES) - {"static-cudagraph"}, rows
            assert ok["dynamic"]["speedup_vs_dynamic"] == 1.0
            assert ok["static-compile"]["graph_breaks"] == 0
            assert ok["static-compile"]["graph_count"] == 1
            assert "BN folded by fuse()" in ok["static-optimized"]["applied"]
            for row in ok.values():
                assert row["median_ms"] > 0 and row["images_per_s"] > 0 and row["calls"] == 3 * 2
                assert len(row["round_medians_ms"]) == 2 and row["median_ms"] == statistics.median(
                    row["round_medians_ms"]
                )
                assert row["spread_ms"] == max(row["round_medians_ms"]) - min(row["round_medians_ms"])
                low, high = row["speedup_range"]
                assert low <= high and row["setup_s"] == row["build_s"] + row["first_call_s"]
            for mode in ("static-compile", "static-optimized"):
                assert ok[mode]["compile_s"] >= 0 and set(ok[mode]["fxgraph_cache"]) == {"hit", "miss", "bypass"}
    for info, (_, spec) in zip(report["cells"], CELLS):
        plan = lower(spec, TINY)
        assert (info["trainable_parameters"], info["flops_per_image"]) == (plan.trainable_parameters, plan.flops)
    assert report["device"] and report["torch_version"] and report["date"]
    assert set(report["inductor_cache"]) == {"dir", "from_env", "files_before", "warm"}


def test_training_step_skips_inference_only_modes() -> None:
    modes = ("dynamic", "static", "static-fused", "static-script", "static-freeze", "static-optimized")
    report = run_benchmark(CELLS[1:], tiny_settings(train=True, batch_sizes=(2,), modes=modes))
    rows = by_mode(report, "truncation", 2)
    assert rows["static-fused"] == {**rows["static-fused"], "status": "skipped", "error": "inference only"}
    assert rows["static-freeze"]["status"] == "skipped"
    assert all(rows[m]["status"] == "ok" for m in ("dynamic", "static", "static-script", "static-optimized"))
    assert rows["static-optimized"]["applied"].startswith(
        "optimize: train, cpu, fp32, channels_last, torch.compile: per cell"
    )


def test_modes_run_in_interleaved_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """ABC ABC ABC: every mode is timed once per round, in the same order each round."""
    timed: list[object] = []

    def record(fn, device, warmup, iters, max_seconds):
        timed.append(fn)
        return Timing(median_ms=float(len(timed)), iqr_ms=0.0, calls=iters)

    monkeypatch.setattr("nbcompile.bench.runner.time_calls", record)
    modes = ("dynamic", "static", "static-fused")
    report = run_benchmark(CELLS[:1], tiny_settings(batch_sizes=(1,), modes=modes, rounds=3))
    assert len(timed) == 9 and len(set(timed)) == 3
    assert timed[0:3] == timed[3:6] == timed[6:9]
    rows = by_mode(report, "two_vertex", 1)
    # The fake timings are the call's position: dynamic 1, 4, 7; static 2, 5, 8; static-fused 3, 6, 9.
    assert rows["static"]["round_medians_ms"] == [2.0, 5.0, 8.0] and rows["static"]["median_ms"] == 5.0
    assert rows["static"]["speedup_vs_dynamic"] == 4 / 5
    assert rows["static-fused"]["speedup_range"] == [1 / 3, 7 / 9]


def test_ratios_use_the_median_of_round_medians_and_the_worst_and_best_round() -> None:
    rows = [
        {
            "cell": "a",
            "batch_size": 1,
            "mode": "dynamic",
            "status": "ok",
            "round_medians_ms": [10.0, 20.0, 30.0],
            "median_ms": 20.0,
            "tflops": 1.0,
        },
        {
            "cell": "a",
            "batch_size": 1,
            "mode": "static",
            "status": "ok",
            "round_medians_ms": [5.0, 5.0, 10.0],
            "median_ms": 5.0,
            "tflops": 4.0,
        },
        {
            "cell": "a",
            "batch_size": 2,
            "mode": "static",
            "status": "ok",
            "round_medians_ms": [1.0],
            "median_ms": 1.0,
            "tflops": 2.0,
        },
        {"cell": "a", "batch_size": 1, "mode": "static-cudagraph", "status": "skipped"},
    ]
    add_ratios(rows, peak=8.0)
    assert rows[1]["speedup_vs_dynamic"] == 4.0 and rows[1]["speedup_range"] == [2.0, 4.0]
    assert rows[1]["fraction_of_peak"] == 0.5 and rows[0]["speedup_range"] == [1.0, 1.0]
    assert rows[2]["speedup_vs_dynamic"] is None and rows[2]["speedup_range"] is None  # no baseline at batch 2
    assert "speedup_vs_dynamic" not in rows[3]


def test_the_benchmark_leaves_global_torch_state_as_it_was() -> None:
    import torch

    torch.manual_seed(1234)
    state = torch.random.get_rng_state()
    run_benchmark(CELLS[:1], tiny_settings(batch_sizes=(1,), modes=("dynamic", "static", "static-optimized")))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert matmul_peak_tflops(torch.device("cpu"), torch.float32) > 0
    assert torch.equal(torch.random.get_rng_state(), state)
    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        with cudnn_benchmark(torch.device("cuda")):  # only sets a flag: no GPU needed
            assert torch.backends.cudnn.benchmark is True
        assert torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = before


def test_the_plot_leaves_matplotlib_global_state_alone(tmp_path: Path) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    rows = [
        {"cell": "a", "batch_size": batch, "mode": mode, "status": "ok", "median_ms": ms}
        for mode, batch, ms in (("dynamic", 1, 2.0), ("dynamic", 4, 3.0), ("static", 1, 1.0), ("static", 4, 1.5))
    ]
    report = {
        "device": "cpu",
        "torch_version": "x",
        "settings": {"dtype": "fp32", "train": False},
        "cells": [{"label": "a"}],
        "results": [*rows, {"cell": "a", "batch_size": 1, "mode": "static-cudagraph", "status": "skipped"}],
    }
    backend, figures = matplotlib.get_backend(), plt.get_fignums()
    try:
        matplotlib.use("svg")  # not Agg, so that a switch to Agg would show
        plot_latency(report, tmp_path / "out" / "latency.png")
        assert matplotlib.get_backend() == "svg" and plt.get_fignums() == figures
    finally:
        matplotlib.use(backend)
    assert (tmp_path / "out" / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["latency.png"]  # no temporary left


def test_inductor_cache_state_tells_a_cold_cache_from_a_warm_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "cache"))
    assert inductor_cache_state() == {
        "dir": str(tmp_path / "cache"),
        "from_env": True,
        "files_before": 0,
        "warm": False,
    }
    (tmp_path / "cache" / "fxgraph").mkdir(parents=True)
    (tmp_path / "cache" / "fxgraph" / "entry").write_bytes(b"x")
    assert inductor_cache_state()["warm"] is True


def test_a_failing_mode_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    real_build = bench_modes.build

    def broken_build(mode, module, backend):
        if mode.name == "static-script":
            raise RuntimeError("boom\nsecond line")
        return real_build(mode, module, backend)

    monkeypatch.setattr("nbcompile.bench.runner.build", broken_build)
    report = run_benchmark(CELLS[:1], tiny_settings(batch_sizes=(1,), modes=("dynamic", "static-script", "static")))
    rows = by_mode(report, "two_vertex", 1)
    assert rows["static-script"]["status"] == "failed"
    assert rows["static-script"]["error"] == "RuntimeError: boom"
    assert rows["static"]["status"] == "ok"


def test_bad_settings_are_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown mode 'fastest'"):
        BenchSettings(modes=("fastest",))
    with pytest.raises(ValueError, match="dtype"):
        BenchSettings(dtype="fp8")
    with pytest.raises(ValueError, match="rounds"):
        BenchSettings(rounds=0)


def test_time_calls_counts_and_stops() -> None:
    import torch

    calls = []
    timing = time_calls(lambda: calls.append(1), torch.device("cpu"), warmup=2, iters=7, max_seconds=60)
    assert len(calls) == 9 and timing.calls == 7 and timing.median_ms >= 0 and timing.iqr_ms >= 0
    calls.clear()
    timing = time_calls(lambda: calls.append(1), torch.device("cpu"), warmup=0, iters=1000, max_seconds=0.0)
    assert timing.calls == 3  # at least three timed calls, even past the time limit


def test_cli_writes_json_and_plot(tmp_path: Path) -> None:
    json_path, plot_path = tmp_path / "out" / "bench.json", tmp_path / "out" / "bench.png"
    args = [
        "bench",
        str(TWO_VERTEX_JSON),
        "--batch-sizes",
        "1,2",
        "--modes",
        "dynamic,static,static-compile,static-cudagraph",
        "--warmup",
        "0",
        "--iters",
        "2",
        "--rounds",
        "2",
        "--compile-backend",
        "eager",
        "--image-size",
        "8",
        "--no-peak",
        "--stem-channels",
        "4",
        "--num-stacks",
        "2",
        "--cells-per-stack",
        "1",
        "--json",
        str(json_path),
        "--plot",
        str(plot_path),
    ]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    report = json.loads(json_path.read_text())
    assert {r["mode"] for r in report["results"]} == {"dynamic", "static", "static-compile", "static-cudagraph"}
    assert report["settings"]["config"]["stem_channels"] == 4 and report["settings"]["rounds"] == 2
    for row in report["results"]:
        if row["status"] == "ok":
            assert len(row["round_medians_ms"]) == 2 and len(row["speedup_range"]) == 2
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "static-compile" in result.stdout and "needs a CUDA device" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--modes", "dynamic,fastest"], "unknown mode 'fastest'"),
        (["--batch-sizes", "0"], "batch size 0 is not in 1..65536"),
        (["--batch-sizes", "100000000"], "batch size 100000000 is not in 1..65536"),
        (["--batch-sizes", "a,b"], "must be comma-separated integers"),
        (["--device", "cuda"], "CUDA is not available"),
        (["--device", "tpu"], "'tpu' is not cpu, cuda or cuda:N"),
        (["--device", "cuda:x"], "is not cpu, cuda or cuda:N"),
        (["--rounds", "0"], "'--rounds': 0 is not in the range"),
        (["--iters", "0"], "--iters"),
        (["--warmup", "-5"], "--warmup"),
        (["--max-seconds", "-1"], "--max-seconds"),
        (["--max-seconds", "0"], "--max-seconds"),
        (["--json", "/dev/null/b.json"], "--json /dev/null/b.json: /dev/null is not a folder"),
        (["--plot", "/dev/null/p.png"], "--plot /dev/null/p.png: /dev/null is not a folder"),
        (["--json", "/tmp"], "is a directory"),
    ],
)
def test_cli_bad_options_are_one_line_errors_before_benchmarking(args: list[str], fragment: str) -> None:
    import torch

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert_one_line_error(invoke(["bench", str(TWO_VERTEX_JSON), *args]), fragment)
