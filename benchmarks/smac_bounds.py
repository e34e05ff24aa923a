"""What SMAC3's run history costs to keep its objective bounds, with SMAC3's recomputation and with
nbcompile's folded bounds.

A query adds two entries to the run history (the trial running, then finished). The script adds
``--queries`` such pairs of random encoding-A configurations at one budget to SMAC3's own
``RunHistory`` and to one given the folded bounds, ``--rounds`` times alternately, and reports the
seconds of each round; the final bounds of the two are checked to be equal. Prints JSON and saves
it. Usage:

    python benchmarks/smac_bounds.py --queries 5000 --rounds 2 --out benchmarks/results/search/smac_bounds.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from nbcompile.fileio import write_atomic
from nbcompile.search.cell_encodings import encoding
from nbcompile.search.model_based import _fold_objective_bounds


def fill(configs: list[Any], folded: bool) -> tuple[float, list[tuple[float, float]]]:
    """Seconds to add every configuration running then finished, and the bounds at the end."""
    from smac.runhistory import RunHistory
    from smac.runhistory.enumerations import StatusType

    history = RunHistory()
    if folded:
        _fold_objective_bounds(history)
    start = time.perf_counter()
    for index, config in enumerate(configs):
        history.add(config, 0.0, status=StatusType.RUNNING, budget=4.0)
        history.add(config, (index % 97) / 97, status=StatusType.SUCCESS, budget=4.0, force_update=True)
    return time.perf_counter() - start, history.objective_bounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    space = encoding("A").configuration_space()
    space.seed(1)
    configs = space.sample_configuration(args.queries)
    seconds: dict[str, list[float]] = {"smac3": [], "folded": []}
    bounds = {}
    for _ in range(args.rounds):
        for name in seconds:
            elapsed, bounds[name] = fill(configs, folded=name == "folded")
            seconds[name].append(round(elapsed, 2))
    if bounds["smac3"] != bounds["folded"]:
        raise SystemExit(f"the bounds differ: {bounds}")
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "queries": args.queries,
        "seconds": seconds,
        "bounds": [[float(low), float(high)] for low, high in bounds["folded"]],
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out is not None:
        write_atomic(args.out, text + "\n")


if __name__ == "__main__":
    main()
