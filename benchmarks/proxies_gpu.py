"""Cells per second of the proxies on a device, and the device-hours all 423,624 cells would take.

For ``--warmup`` + ``--cells`` cells drawn from the space (``--seed``), each network is built as
``nbcompile proxies`` builds it (rendered, executed, initialised on the CPU with torch's CPU
generator, moved to ``--device``), then every proxy of ``--proxies`` runs once on one batch of
``--batch-size`` standard-normal images (the cost does not depend on the pixel values); the
device is synchronised around every step. The first ``--warmup`` cells are not counted (cuDNN's
algorithm search, first-use allocations). Measuring stops early once ``--max-seconds`` have
passed, so that the command ends in bounded time.

Prints JSON and writes it to ``--out``: the seconds per cell of the build (CPU) and of each proxy
(device); cells/s of each proxy with its build (``nbcompile proxies --proxies NAME``, one
process) and of all of them together; and the hours for the whole space, one process per
device, and with the build spread over ``--build-workers`` CPU processes per device (then the
slower of the device's share and the CPU's share sets the pace). Usage:

    python benchmarks/proxies_gpu.py --device cuda --cells 30 --out benchmarks/results/proxies_gpu.json
    python benchmarks/proxies_gpu.py --device cpu --cells 2 --stem-channels 8 --out /tmp/x.json   # smoke test

On a CPU shared with other work, ``--threads 1`` is much faster than torch's default.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from nbcompile.compiler.config import NetworkConfig
from nbcompile.proxies.runner import random_batch, sample_specs
from nbcompile.proxies.scores import NETWORK_PROXIES
from nbcompile.runtime.device import seeded, synchronize
from nbcompile.runtime.inmemory import NetworkBuilder

#: The cells of NAS-Bench-101.
SPACE = 423_624
BATCH_PROXIES = ("grad_norm", "snip", "grasp", "fisher", "jacob_cov", "nwot")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--cells", type=int, default=30, help="Cells measured after the warm-up.")
    parser.add_argument(
        "--warmup", type=int, default=None, help="Cells run first and not counted [default: 2 on cuda, 0 on cpu]."
    )
    parser.add_argument("--proxies", default=",".join(("synflow", *BATCH_PROXIES)))
    parser.add_argument("--batch-size", type=int, default=256, help="Images of the batch (the reference: 256).")
    parser.add_argument("--stem-channels", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--build-workers", type=int, default=8, help="CPU processes per device, for the projection.")
    parser.add_argument(
        "--max-seconds", type=float, default=120.0, help="Stop after this long (once a cell has been measured)."
    )
    parser.add_argument("--threads", type=int, default=None, help="torch's CPU threads [default: torch's choice].")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    proxies = [name.strip() for name in args.proxies.split(",") if name.strip()]
    unknown = [name for name in proxies if name not in NETWORK_PROXIES]
    if unknown:
        parser.error(f"--proxies: unknown {unknown[0]!r} (known: {', '.join(NETWORK_PROXIES)})")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    if args.warmup is None:
        args.warmup = 2 if device.type == "cuda" else 0
    if args.threads:
        torch.set_num_threads(args.threads)
    config = NetworkConfig(stem_channels=args.stem_channels)
    batch = random_batch(args.batch_size, args.seed, config)
    images, labels = batch.images.to(device), batch.labels.to(device)
    builder = NetworkBuilder(config)
    seconds: dict[str, list[float]] = {name: [] for name in ("build", *proxies)}
    started = time.perf_counter()
    measured = 0
    for number, spec in enumerate(sample_specs(args.warmup + args.cells, args.seed)):
        counted = number >= args.warmup
        start = time.perf_counter()
        network_class = builder.network_class(spec)
        with seeded(args.seed):
            network = network_class()
        network = network.to(device)
        synchronize(device)
        if counted:
            seconds["build"].append(time.perf_counter() - start)
        for name in proxies:
            start = time.perf_counter()
            NETWORK_PROXIES[name](network, images, labels)
            synchronize(device)
            if counted:
                seconds[name].append(time.perf_counter() - start)
        measured += counted
        del network
        if measured and time.perf_counter() - started > args.max_seconds:
            break
    per_cell = {name: sum(values) / len(values) for name, values in seconds.items()}
    build, device_total = per_cell["build"], sum(per_cell[name] for name in proxies)

    def hours(cell_seconds: float) -> float:
        return round(SPACE * cell_seconds / 3600, 2)

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "config": config.as_dict(),
        "batch_size": args.batch_size,
        "cells_measured": measured,
        "warmup": args.warmup,
        "seconds_per_cell": {name: round(value, 5) for name, value in per_cell.items()},
        "cells_per_second_with_build": {name: round(1 / (build + per_cell[name]), 3) for name in proxies},
        "cells_per_second_all_proxies": round(1 / (build + device_total), 3),
        "hours_for_the_space": {
            "one_process_per_device": {
                **{name: hours(build + per_cell[name]) for name in proxies},
                "all": hours(build + device_total),
            },
            f"build_over_{args.build_workers}_cpu_processes_per_device": {
                **{name: hours(max(build / args.build_workers, per_cell[name])) for name in proxies},
                "all": hours(max(build / args.build_workers, device_total)),
            },
        },
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
