"""AOT package against JIT ``torch.compile``: build time, load time, first call and latency.

Usage: python3 benchmarks/aot.py SPEC.json [--device cpu|cuda] [--dtype auto|fp32|bf16] [--batch-size N]
       [--rounds R] [--iters N] [--json PATH] [-- CONFIG FLAGS such as --stem-channels 8]

Each measurement that must start cold runs in a fresh process:
  1. build:   ``build_package`` (torch.export + AOTInductor) of the seed-0 network;
  2. load:    import torch and nbcompile, ``load_package``, first call; records whether anything
              was compiled in that process (it must not be);
  3. latency: ``nbcompile.optimize`` (the JIT path: compile + first calls, timed), then the package
              loaded beside it, both timed in R interleaved rounds (median of round medians).
The inductor cache's state (TORCHINDUCTOR_CACHE_DIR) is recorded at the start of each step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _network(spec_path: str, config: dict[str, int]):
    import nbcompile
    from nbcompile.compiler.config import NetworkConfig
    from nbcompile.compiler.driver import plan_job
    from nbcompile.runtime.device import seeded
    from nbcompile.space.cellfiles import read_specs

    (_, spec), *_ = read_specs(spec_path, None)
    job = plan_job(spec, config=NetworkConfig.from_kwargs(**config))
    folder = Path(tempfile.mkdtemp(prefix="nbcompile-aot-bench-"))
    source = job.write(folder)
    with seeded(0):
        model = nbcompile.load_model(source, num_labels=job.plan.config.num_labels)
    return model, job


def _example(batch_size: int, in_channels: int, device: str):
    import torch

    return torch.randn(batch_size, in_channels, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)


def child_build(args: argparse.Namespace, config: dict[str, int]) -> dict:
    from nbcompile.bench.environment import inductor_cache_state
    from nbcompile.runtime.aot import build_package

    cache = inductor_cache_state()
    model, job = _network(args.spec, config)
    started = time.perf_counter()
    build_package(
        model,
        args.package,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        in_channels=job.plan.config.in_channels,
        module_hash=job.plan.module_hash,
    )
    return {
        "build_s": time.perf_counter() - started,
        "package_bytes": Path(args.package).stat().st_size,
        "inductor_cache": cache,
    }


def child_load(args: argparse.Namespace, config: dict[str, int]) -> dict:
    started = time.perf_counter()
    import torch

    import nbcompile
    from nbcompile.runtime.device import synchronize

    imported = time.perf_counter()
    package = nbcompile.load_package(args.package)
    loaded = time.perf_counter()
    package(_example(args.batch_size, package.info.in_channels, package.info.device))
    synchronize(torch.device(package.info.device))
    first = time.perf_counter()
    from torch._dynamo.utils import compilation_time_metrics, counters

    return {
        "import_s": imported - started,
        "load_s": loaded - imported,
        "first_call_s": first - loaded,
        "compiled_in_process": "_compile.compile_inner" in compilation_time_metrics or bool(counters["inductor"]),
    }


def child_latency(args: argparse.Namespace, config: dict[str, int]) -> dict:
    import torch

    import nbcompile
    from nbcompile.bench.environment import inductor_cache_state
    from nbcompile.bench.timing import time_calls
    from nbcompile.runtime.device import synchronize

    cache = inductor_cache_state()
    device = torch.device(args.device)
    model, job = _network(args.spec, config)
    x = _example(args.batch_size, job.plan.config.in_channels, args.device)
    started = time.perf_counter()
    optimized = nbcompile.optimize(model.to(device), x, dtype=args.dtype)
    synchronize(device)
    jit_s = time.perf_counter() - started
    started = time.perf_counter()
    package = nbcompile.load_package(args.package)
    package(x)
    synchronize(device)
    load_s = time.perf_counter() - started
    with torch.no_grad():
        max_abs_diff = (package(x) - optimized(x)).abs().max().item()
    rounds: dict[str, list[float]] = {"jit": [], "aot": []}
    for _ in range(args.rounds):
        for name, fn in (("jit", lambda: optimized(x)), ("aot", lambda: package(x))):
            rounds[name].append(time_calls(fn, device, 3, args.iters, 10.0).median_ms)
    return {
        "inductor_cache": cache,
        "jit_compile_and_first_calls_s": jit_s,
        "applied": optimized.summary,
        "aot_load_and_first_call_s": load_s,
        "max_abs_diff_jit_vs_aot": max_abs_diff,
        "round_medians_ms": rounds,
        "median_ms": {name: statistics.median(values) for name, values in rounds.items()},
    }


CHILDREN = {"build": child_build, "load": child_load, "latency": child_latency}


def _config(flags: list[str]) -> dict[str, int]:
    pairs = zip(flags[::2], flags[1::2])
    return {name.lstrip("-").replace("-", "_"): int(value) for name, value in pairs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("--child", choices=CHILDREN, help=argparse.SUPPRESS)
    parser.add_argument("--package", help=argparse.SUPPRESS)
    args, config_flags = parser.parse_known_args()
    config_flags = [flag for flag in config_flags if flag != "--"]
    config = _config(config_flags)
    if args.child:
        print(json.dumps(CHILDREN[args.child](args, config)))
        return
    import torch

    from nbcompile.runtime.aot import check_package_options

    args.dtype = check_package_options(args.device, args.dtype, args.batch_size)[1]
    report: dict = {
        "spec": args.spec,
        "device": args.device,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "config": config,
        "torch_version": torch.__version__,
    }
    if torch.cuda.is_available() and args.device.startswith("cuda"):
        report["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
    with tempfile.TemporaryDirectory(prefix="nbcompile-aot-") as folder:
        args.package = str(Path(folder) / "network.pt2")
        for step in ("build", "load", "latency"):
            command = [
                sys.executable,
                __file__,
                args.spec,
                "--child",
                step,
                "--package",
                args.package,
                "--device",
                args.device,
                "--dtype",
                args.dtype,
                "--batch-size",
                str(args.batch_size),
                "--rounds",
                str(args.rounds),
                "--iters",
                str(args.iters),
                *config_flags,
            ]
            started = time.perf_counter()
            completed = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
            if completed.returncode != 0:
                sys.exit(f"aot benchmark, step {step} failed:\n{completed.stderr[-3000:]}")
            report[step] = {**json.loads(completed.stdout.splitlines()[-1]), "process_s": time.perf_counter() - started}
            print(f"{step}: {json.dumps(report[step])}", flush=True)
    if args.json_path:
        from nbcompile.fileio import write_atomic

        write_atomic(Path(args.json_path), json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json_path}")


if __name__ == "__main__":
    main()
