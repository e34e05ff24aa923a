"""Speed of `nbcompile train`'s recipe on synthetic CIFAR-sized data.

For each cell: build the Trainer exactly as a 108-epoch run does (40,000 training and 3 × 10,000
evaluation images resident on the device as uint8, augmentation on the device, upstream's loss
and TF RMSProp), run ``--warmup`` steps (compilation included), then ``--windows`` timed windows
of ``--steps`` steps each (the median window gives the step time), then time one evaluation
(3 × 39 batches of 256 = 29,952 images, after one untimed evaluation).

Extrapolated wall time of the 108-epoch run, evaluations included:

    warm-up overhead + 16,875 × step time + 3 × evaluation time,

where the warm-up overhead is the Trainer's own compile-and-warm-up time (``warmup_time``, spent
when it is built, before the run's clock starts) plus the warm-up's time minus ``--warmup`` ×
step time. Model build (which then includes that compilation) and data upload are reported apart. Usage:

    python benchmarks/train_speed.py --device cuda --out benchmarks/results/train_gpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nbcompile.compiler.config import NetworkConfig
from nbcompile.runtime.device import PRECISIONS
from nbcompile.space.cellfiles import read_specs
from nbcompile.train import recipe
from nbcompile.train.cifar10 import Cifar10, ImageSet
from nbcompile.train.loop import DeviceData, TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[1]
CELLS = {"inception": REPO / "examples/inception.json", "7v9e": REPO / "examples/seven_vertex_nine_edge.json"}


def synthetic_cifar(seed: int = 0) -> Cifar10:
    rng = np.random.default_rng(seed)

    def images(n: int) -> ImageSet:
        return ImageSet(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n))

    train = images(40_000)
    return Cifar10(train, images(10_000), images(10_000), ImageSet(train.images[:10_000], train.labels[:10_000]))


def measure(cell: str, data: DeviceData, config: TrainConfig, network: NetworkConfig, args: argparse.Namespace) -> dict:
    spec = read_specs(str(CELLS[cell]))[0][1]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as model_dir:
        trainer = Trainer(spec, data, config, network, seed=0, model_dir=Path(model_dir), device=args.device)
    build = time.perf_counter() - started
    trainer.synchronize()
    started = time.perf_counter()
    trainer.train_until(args.warmup)
    trainer.synchronize()
    warmup = time.perf_counter() - started
    windows = []
    for _ in range(args.windows):
        started = time.perf_counter()
        trainer.train_until(trainer.step + args.steps)
        trainer.synchronize()
        windows.append((time.perf_counter() - started) / args.steps)
    trainer.check_losses()
    step_time = statistics.median(windows)
    if args.no_eval:
        evaluation, counts = float("nan"), []
    else:
        trainer.accuracy_counts()  # untimed: first-use costs of eval mode
        started = time.perf_counter()
        counts = trainer.accuracy_counts()
        evaluation = time.perf_counter() - started
    total_steps = recipe.steps_for(108)
    # The compiled step is compiled and warmed up when the Trainer is built (trainer.warmup_time),
    # before the run's clock starts; the first timed steps may still pay one-off costs.
    overhead = trainer.warmup_time + max(0.0, warmup - args.warmup * step_time)
    return {
        "cell": cell,
        "precision": config.precision,
        "channels_last": config.channels_last,
        "compile": config.compile_step,
        "trainable_parameters": trainer.trainable_parameters,
        "build_seconds": round(build, 3),
        "warmup_steps": args.warmup,
        "warmup_seconds": round(warmup, 3),
        "step_seconds_windows": [round(w, 6) for w in windows],
        "step_seconds": round(step_time, 6),
        "images_per_second": round(config.batch_size / step_time, 1),
        "epoch_seconds": round(total_steps / 108 * step_time, 3),
        "evaluation_seconds": None if args.no_eval else round(evaluation, 3),
        "evaluation_images": sum(images for _, images in counts),
        "run_108_training_seconds": round(total_steps * step_time, 1),
        "run_108_wall_seconds_extrapolated": None
        if args.no_eval
        else round(overhead + total_steps * step_time + 3 * evaluation, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cells", nargs="+", default=["inception", "7v9e"], choices=sorted(CELLS))
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=PRECISIONS)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", choices=["on", "off", "auto"], default="auto", help="auto: on for cuda")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--stem-channels", type=int, default=128)
    parser.add_argument("--num-stacks", type=int, default=3)
    parser.add_argument("--cells-per-stack", type=int, default=3)
    parser.add_argument("--no-eval", action="store_true", help="skip timing an evaluation (slow on a CPU)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the figures")
    args = parser.parse_args()
    network = NetworkConfig(
        stem_channels=args.stem_channels, num_stacks=args.num_stacks, cells_per_stack=args.cells_per_stack
    )
    compile_step = args.compile == "on" or (args.compile == "auto" and args.device.startswith("cuda"))
    started = time.perf_counter()
    data = DeviceData.of(synthetic_cifar(), args.device)
    upload = time.perf_counter() - started
    rows = []
    for cell in args.cells:
        for precision in args.precision:
            config = TrainConfig(precision=precision, channels_last=args.channels_last, compile_step=compile_step)
            row = measure(cell, data, config, network, args)
            rows.append(row)
            print(
                f"{cell:10s} {precision} compile={compile_step!s:5s} {row['images_per_second']:>9,.0f} images/s  "
                f"epoch {row['epoch_seconds']:8.2f} s  eval {row['evaluation_seconds']} s  "
                f"warm-up {row['warmup_seconds']:6.1f} s  108 epochs ≈ {row['run_108_wall_seconds_extrapolated']} s",
                flush=True,
            )
    device_name = (
        torch.cuda.get_device_name(args.device)
        if args.device.startswith("cuda")
        else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    )
    report = {
        "device": device_name,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "network": network.as_dict(),
        "data_upload_seconds": round(upload, 3),
        "extrapolation": "warm-up overhead + 16,875 x median step time + 3 x evaluation time",
        "rows": rows,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
