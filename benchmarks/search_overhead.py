"""What a search algorithm itself costs per query: the wall time of ask + tell, without the table.

Each algorithm's optimizer is driven alone: its proposals are answered by a made-up validation
accuracy (a function of the cell's module hash; error 1 outside the space), so no dataset lookup
is timed, only the optimizer (decoding its configuration included). Every answered proposal is an
observation, inside the space or not. The figure at N observations is the mean time of ask + tell
over the ``--window`` observations ending at N. An algorithm whose run passes ``--cap`` seconds
stops there, reported with the observations it reached (SMAC's cost grows with its history).
Prints a table and saves JSON. Usage:

    python benchmarks/search_overhead.py --at 100 1000 --cap 240 --out benchmarks/results/search_overhead.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from nbcompile.fileio import write_atomic
from nbcompile.search.algorithms import ALGORITHMS
from nbcompile.search.optimizer import SearchContext, SearchOptions
from nbcompile.search.protocol import Evaluation
from nbcompile.space.spec import ModelSpec


def made_up_accuracy(spec: ModelSpec, epochs: int) -> float:
    """A deterministic accuracy in [0.80, 0.95], higher with more epochs."""
    return 0.80 + 0.15 * int(spec.module_hash[:8], 16) / 0xFFFFFFFF * (0.5 + epochs / 216)


def measure(name: str, points: list[int], window: int, cap: float, seed: int, options: SearchOptions) -> dict:
    """Seconds per ask + tell over the window ending at each of ``points`` (or up to the cap)."""
    start = time.perf_counter()
    context = SearchContext(seed, options, lambda spec, epochs: True, (4, 12, 36, 108))
    optimizer = ALGORITHMS[name].build(context)
    setup = time.perf_counter() - start
    steps: list[float] = []
    began = time.perf_counter()
    while len(steps) < max(points) and time.perf_counter() - began < cap:
        step = time.perf_counter()
        proposal = optimizer.ask()
        valid = proposal.spec is not None
        accuracy = made_up_accuracy(proposal.spec, proposal.epochs) if valid else 0.0
        index = len(steps)
        evaluation = Evaluation(
            name,
            0,
            index,
            proposal.spec.module_hash if valid else "",
            proposal.epochs,
            0,
            accuracy,
            accuracy,
            0,
            0,
            valid,
        )
        optimizer.tell(proposal, evaluation)
        steps.append(time.perf_counter() - step)
    per_query = {}
    for point in points:
        end = min(point, len(steps))
        chunk = steps[max(0, end - window) : end]
        per_query[str(point)] = {"observations": end, "seconds_per_query": sum(chunk) / len(chunk)}
    return {
        "setup_seconds": setup,
        "observations": len(steps),
        "total_seconds": sum(steps),
        "capped": len(steps) < max(points),
        "per_query": per_query,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS))
    parser.add_argument("--at", nargs="+", type=int, default=[100, 1000])
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--cap", type=float, default=240.0, help="seconds of asking and telling per algorithm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoding", default="A")
    parser.add_argument("--smac-retrain-after", type=int, default=SearchOptions().smac_retrain_after)
    parser.add_argument("--smac-challengers", type=int, default=SearchOptions().smac_challengers)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    options = SearchOptions(
        encoding=args.encoding, smac_retrain_after=args.smac_retrain_after, smac_challengers=args.smac_challengers
    )
    results = {}
    print(f"{'algorithm':<10} {'setup s':>8}  " + "  ".join(f"{'ms/query @' + str(p):>16}" for p in args.at))
    for name in args.algorithms:
        result = measure(name, args.at, args.window, args.cap, args.seed, options)
        results[name] = result
        cells = []
        for point in args.at:
            entry = result["per_query"][str(point)]
            note = "" if entry["observations"] == point else f" (@{entry['observations']})"
            cells.append(f"{1000 * entry['seconds_per_query']:>10.2f}{note:>6}")
        print(f"{name:<10} {result['setup_seconds']:>8.2f}  " + "  ".join(f"{c:>16}" for c in cells), flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "machine": platform.platform(),
            "python": platform.python_version(),
            "options": vars(options),
            "window": args.window,
            "cap_seconds": args.cap,
            "algorithms": results,
        }
        write_atomic(args.out, json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
