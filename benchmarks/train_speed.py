"""Speed of `nbcompile train`'s recipe on synthetic CIFAR-sized data.

For each cell, precision and CUDA-graphs setting: build the Trainer exactly as a 108-epoch run
does (40,000 training and 3 × 10,000 evaluation images resident on the device as uint8,
augmentation on the device, upstream's loss and TF RMSProp; with ``--compile on``, the step
compiled and warmed up through ``nbcompile.optimize(train=True)``, and on CUDA captured in one
CUDA graph unless ``--cuda-graphs off``), run ``--warmup`` steps, then ``--windows`` timed
windows of ``--steps`` steps each, or of as many steps as fill ``--window-seconds`` by the
warm-up's second half (the median window gives the step time), then time one evaluation
(3 × 39 batches of 256 = 29,952 images, after one untimed batch of each set), once per cell,
precision and layout: it does not depend on how the training step runs. ``--train-images`` and
``--batch-size`` shrink the data and the batch for a smoke test; the extrapolation is always to
108 epochs of 40,000 images, in batches of ``--batch-size``.

Extrapolated wall time of the 108-epoch run, evaluations included:

    warm-up overhead + 16,875 × step time + 3 × evaluation time,

where the warm-up overhead is the Trainer's own compile-and-warm-up time (``warmup_time``, spent
when it is built, before the run's clock starts) plus the warm-up's time minus ``--warmup`` ×
step time. ``--compile-only`` builds the Trainers and records their build time, nothing else
(to fill the inductor cache, several processes at once). The JSON is rewritten after each row.
``--table FILES`` prints the rows of result files as one compact table. Usage:

    python benchmarks/train_speed.py --device cuda --cuda-graphs on off --out benchmarks/results/train_gpu.json
    python benchmarks/train_speed.py --table benchmarks/results/train_gpu/*.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nbcompile.compiler.config import NetworkConfig
from nbcompile.fileio import write_atomic
from nbcompile.runtime.device import PRECISIONS, float32_math
from nbcompile.space.cellfiles import read_specs
from nbcompile.train import recipe
from nbcompile.train.cifar10 import Cifar10, ImageSet
from nbcompile.train.data import DeviceImages
from nbcompile.train.loop import DeviceData, TrainConfig, Trainer, accuracy_count

REPO = Path(__file__).resolve().parents[1]
CELLS = {"inception": REPO / "examples/inception.json", "7v9e": REPO / "examples/seven_vertex_nine_edge.json"}


def synthetic_cifar(train_images: int = 40_000, seed: int = 0) -> Cifar10:
    """Random images in CIFAR-10's shapes: ``train_images`` to train on, a quarter of that in
    each evaluation set (upstream's 40,000 and 10,000 by default)."""
    rng = np.random.default_rng(seed)

    def images(n: int) -> ImageSet:
        return ImageSet(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n))

    train, quarter = images(train_images), train_images // 4
    return Cifar10(train, images(quarter), images(quarter), ImageSet(train.images[:quarter], train.labels[:quarter]))


def timed(function, *args) -> float:
    """Seconds ``function(*args)`` takes (the Trainer waits for the device before it returns)."""
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def time_evaluation(trainer: Trainer) -> tuple[float, int]:
    """Seconds and images of one evaluation, after one untimed batch of each set (first-use costs)."""
    config, size = trainer.config, trainer.config.batch_size
    with float32_math(config.precision):
        for images in (trainer.data.train_eval, trainer.data.valid, trainer.data.test):
            first = DeviceImages(images.images[:size], images.labels[:size])
            accuracy_count(trainer.model, first, size, config.precision, config.channels_last)
    trainer.synchronize()
    started = time.perf_counter()
    counts = trainer.accuracy_counts()
    return time.perf_counter() - started, sum(images for _, images in counts)


def measure(
    cell: str,
    data: DeviceData,
    config: TrainConfig,
    network: NetworkConfig,
    args: argparse.Namespace,
    evaluations: dict[tuple, tuple[float, int]],
) -> dict:
    """One row: build (compile), warm-up, timed windows, and the evaluation (timed once per
    cell, precision and layout, then taken from ``evaluations``)."""
    spec = read_specs(str(CELLS[cell]))[0][1]
    graphs = config.compile_step and config.cuda_graphs and args.device.startswith("cuda")
    row: dict = {
        "cell": cell,
        "batch_size": config.batch_size,
        "precision": config.precision,
        # the layout the step ran in: a compiled step is always channels_last (nbcompile.optimize)
        "channels_last": config.channels_last or config.compile_step,
        "compile": config.compile_step,
        "compile_backend": config.compile_backend if config.compile_step else None,
        "cuda_graphs": graphs,
    }
    started = time.perf_counter()
    trainer = Trainer(spec, data, config, network, seed=0, model_dir=args.model_dir / cell, device=args.device)
    row["build_seconds"] = round(time.perf_counter() - started, 3)
    row["trainer_warmup_seconds"] = round(trainer.warmup_time, 3)  # compile + warm-up, inside the build
    row["trainable_parameters"] = trainer.trainable_parameters
    row["applied"] = getattr(trainer.step_function, "summary", "eager step")
    if args.compile_only:
        return row
    first_half = max(1, args.warmup // 2)
    warmup = timed(trainer.train_until, first_half)
    second_half = timed(trainer.train_until, args.warmup)
    warmup += second_half
    estimate = second_half / (args.warmup - first_half)
    steps = args.steps if args.window_seconds is None else max(2, math.ceil(args.window_seconds / estimate))
    windows = [timed(trainer.train_until, trainer.step + steps) / steps for _ in range(args.windows)]
    trainer.check_losses()
    step_time = statistics.median(windows)
    key = (cell, config.precision, config.channels_last)
    if not args.no_eval and key not in evaluations:
        evaluations[key] = time_evaluation(trainer)
    evaluation, images = evaluations.get(key, (None, 0))
    overhead = trainer.warmup_time + max(0.0, warmup - args.warmup * step_time)
    run_steps = recipe.steps_for(108, recipe.TRAIN_IMAGES, config.batch_size)  # 16,875 at batch 256
    row.update(
        {
            "warmup_steps": args.warmup,
            "warmup_seconds": round(warmup, 3),
            "steps_per_window": steps,
            "step_seconds_windows": [round(w, 6) for w in windows],
            "step_seconds": round(step_time, 6),
            "images_per_second": round(config.batch_size / step_time, 1),
            "epoch_seconds": round(run_steps / 108 * step_time, 3),
            "evaluation_seconds": None if evaluation is None else round(evaluation, 3),
            "evaluation_images": images,
            "run_108_training_seconds": round(run_steps * step_time, 1),
            "run_108_wall_seconds_extrapolated": None
            if evaluation is None
            else round(overhead + run_steps * step_time + 3 * evaluation, 1),
        }
    )
    return row


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads"


def one_line(row: dict) -> str:
    what = f"{row['cell']:10s} {row['precision']} graphs={row['cuda_graphs']!s:5s}"
    if "error" in row:
        return f"{what} failed: {row['error']}"
    if "images_per_second" not in row:
        return f"{what} built in {row['build_seconds']} s"
    return (
        f"{what} {row['images_per_second']:>9,.0f} "
        f"images/s  epoch {row['epoch_seconds']:8.2f} s  eval {row['evaluation_seconds']} s  "
        f"build {row['build_seconds']:6.1f} s  108 epochs ≈ {row['run_108_wall_seconds_extrapolated']} s"
    )


def table(paths: list[Path]) -> str:
    """The rows of result files as one Markdown table; the compile-only rows of the same cell,
    precision, layout and CUDA-graphs setting give the ``cold build`` column."""
    reports = [json.loads(path.read_text()) for path in paths]
    key = ("cell", "precision", "channels_last", "cuda_graphs")
    cold = {
        tuple(r[k] for k in key): r["build_seconds"]
        for rep in reports
        for r in rep["rows"]
        if rep.get("compile_only") and "error" not in r
    }
    failed = [one_line(r) for rep in reports for r in rep["rows"] if "error" in r]
    lines = [
        "| cell | precision | channels_last | CUDA graphs | batch | images/s | step ms | epoch s | eval s | build s "
        "| cold build s | 108 epochs, h |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for report in reports:
        if report.get("compile_only"):
            continue
        for r in report["rows"]:
            if "error" in r:
                continue
            build = cold.get(tuple(r[k] for k in key))
            wall = r["run_108_wall_seconds_extrapolated"]
            if wall is not None and build is not None:  # the cold build instead of this row's warm one
                wall += build - r["build_seconds"]
            lines.append(
                f"| {r['cell']} | {r['precision']} | {r['channels_last']} | {r['cuda_graphs']} | {r['batch_size']} | "
                f"{r['images_per_second']:,.0f} | {1000 * r['step_seconds']:.1f} | {r['epoch_seconds']:.1f} | "
                f"{r['evaluation_seconds']} | {r['build_seconds']:.1f} | {'' if build is None else f'{build:.1f}'} | "
                f"{'' if wall is None else f'{wall / 3600:.2f}'} |"
            )
    devices = sorted({f"{rep['device']}, torch {rep['torch']}" for rep in reports})
    return "\n".join([*lines, "", "; ".join(devices), *failed])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cells", nargs="+", default=["inception", "7v9e"], choices=sorted(CELLS))
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=PRECISIONS)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", choices=["on", "off", "auto"], default="auto", help="auto: on for cuda")
    parser.add_argument("--compile-backend", default="inductor", help="aot_eager for a quick smoke test")
    parser.add_argument(
        "--cuda-graphs", nargs="+", choices=["on", "off"], default=None, help="[default: on for a compiled cuda step]"
    )
    parser.add_argument("--warmup", type=int, default=20, help="steps before timing (at least 2)")
    parser.add_argument("--steps", type=int, default=50, help="steps per timed window")
    parser.add_argument("--window-seconds", type=float, default=None, help="instead of --steps: seconds per window")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=recipe.BATCH_SIZE, help="upstream: 256")
    parser.add_argument(
        "--train-images", type=int, default=recipe.TRAIN_IMAGES, help="a quarter of it in each evaluation set"
    )
    parser.add_argument("--stem-channels", type=int, default=128)
    parser.add_argument("--num-stacks", type=int, default=3)
    parser.add_argument("--cells-per-stack", type=int, default=3)
    parser.add_argument("--no-eval", action="store_true", help="skip timing an evaluation (slow on a CPU)")
    parser.add_argument("--compile-only", action="store_true", help="build the Trainers (compile), time nothing else")
    parser.add_argument("--model-dir", type=Path, default=None, help="generated model files [default: a temporary one]")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the figures")
    parser.add_argument("--table", type=Path, nargs="+", default=None, help="print the rows of these JSON files")
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return
    if args.warmup < 2:
        parser.error("--warmup must be at least 2 (its second half estimates the step time)")
    compile_step = args.compile == "on" or (args.compile == "auto" and args.device.startswith("cuda"))
    graphs = args.cuda_graphs or (["on"] if compile_step and args.device.startswith("cuda") else ["off"])
    if "on" in graphs and not (compile_step and args.device.startswith("cuda")):
        parser.error("--cuda-graphs on needs --device cuda and a compiled step")
    network = NetworkConfig(
        stem_channels=args.stem_channels, num_stacks=args.num_stacks, cells_per_stack=args.cells_per_stack
    )
    with tempfile.TemporaryDirectory() as temporary:
        args.model_dir = args.model_dir or Path(temporary)
        started = time.perf_counter()
        data = DeviceData.of(synthetic_cifar(args.train_images), args.device)
        report = {
            "device": device_name(args.device),
            "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "network": network.as_dict(),
            "train_images": args.train_images,
            "compile_only": args.compile_only,
            "data_upload_seconds": round(time.perf_counter() - started, 3),
            "extrapolation": "warm-up overhead + 16,875 x median step time + 3 x evaluation time",
            "rows": [],
        }
        evaluations: dict[tuple, tuple[float, int]] = {}
        for cell in args.cells:
            for precision in args.precision:
                for setting in graphs:
                    config = TrainConfig(
                        batch_size=args.batch_size,
                        precision=precision,
                        channels_last=args.channels_last,
                        compile_step=compile_step,
                        compile_backend=args.compile_backend,
                        cuda_graphs=setting == "on",
                    )
                    try:
                        row = measure(cell, data, config, network, args, evaluations)
                    except Exception as error:  # recorded; the other rows may still run
                        row = {"cell": cell, "precision": precision, "cuda_graphs": setting == "on"}
                        row["error"] = f"{type(error).__name__}: {error}"[:2000]
                    report["rows"].append(row)
                    print(one_line(row), flush=True)
                    if args.out:
                        args.out.parent.mkdir(parents=True, exist_ok=True)
                        write_atomic(args.out, json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
