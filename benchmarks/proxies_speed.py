"""Where the time of ``nbcompile proxies`` goes, at a given network config and batch size.

For ``--cells`` cells drawn from the space (``--seed``): the plan and source (render + exec, once
per cell), the network's seeded initialisation on the CPU, the move to ``--device``, then each
proxy on one batch of ``--batch-size`` standard-normal images (the proxies' cost does not depend
on the pixel values). Prints JSON: seconds per cell of each step, and cells/s of each proxy
(building the network included, as ``nbcompile proxies`` does it for one proxy alone). Usage:

    python benchmarks/proxies_speed.py --cells 3 --batch-size 16 --threads 1 --out benchmarks/results/proxies_cpu.json

``--threads``: torch's threads (default: torch's own choice). On a machine shared with other
work, one thread per process is much faster than several that wait for one another.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from nbcompile.compiler.config import NetworkConfig
from nbcompile.compiler.render import render_plan
from nbcompile.proxies.runner import random_batch, sample_specs
from nbcompile.proxies.scores import NETWORK_PROXIES
from nbcompile.runtime.device import seeded, synchronize
from nbcompile.runtime.inmemory import NetworkBuilder, network_class_from_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stem-channels", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--proxies", default=",".join(NETWORK_PROXIES), help="Comma-separated network proxies.")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = NetworkConfig(stem_channels=args.stem_channels)
    device = torch.device(args.device)
    proxies = [name.strip() for name in args.proxies.split(",") if name.strip()]
    batch = random_batch(args.batch_size, args.seed, config)
    images, labels = batch.images.to(device), batch.labels.to(device)
    builder = NetworkBuilder(config)
    steps: dict[str, list[float]] = {}

    def timed(name: str, start: float) -> None:
        synchronize(device)
        steps.setdefault(name, []).append(time.perf_counter() - start)

    for spec in sample_specs(args.cells, args.seed):
        start = time.perf_counter()
        plan = builder.plan(spec)
        timed("plan", start)
        start = time.perf_counter()
        source = render_plan(plan)
        timed("render", start)
        start = time.perf_counter()
        network_class = network_class_from_source(source, "_nbcompile_speed")
        timed("exec", start)
        start = time.perf_counter()
        with seeded(args.seed):
            network = network_class()
        timed("initialise (cpu)", start)
        start = time.perf_counter()
        network = network.to(device)
        timed("to device", start)
        for name in proxies:
            proxy = NETWORK_PROXIES[name]
            start = time.perf_counter()
            proxy(network, images, labels)
            timed(name, start)
    per_cell = {name: sum(times) / len(times) for name, times in steps.items()}
    build = sum(per_cell[name] for name in ("plan", "render", "exec", "initialise (cpu)", "to device"))
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, {platform.processor() or '?'}",
        "torch": torch.__version__,
        "device": str(device),
        "config": config.as_dict(),
        "batch_size": args.batch_size,
        "cells": args.cells,
        "seconds_per_cell": {name: round(value, 4) for name, value in per_cell.items()},
        "cells_per_second_with_build": {name: round(1 / (build + per_cell[name]), 4) for name in proxies},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
