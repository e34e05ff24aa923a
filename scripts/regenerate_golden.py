"""Regenerate the golden files in generated/ from examples/*.json (run from anywhere).

The golden test (tests/test_golden_files.py) names this script when a golden file is out of date.
Review the diff before committing: a change here is a change in every user's generated code.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nbcompile.compiler.driver import plan_job
from nbcompile.space.cellfiles import read_specs

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
GENERATED = ROOT / "generated"


def main() -> int:
    jobs = [plan_job(spec) for path in sorted(EXAMPLES.glob("*.json")) for _, spec in read_specs(str(path))]
    keep = {"__init__.py"} | {f"{job.module_name}.py" for job in jobs}
    for job in jobs:
        print(job.write(GENERATED))
    for stale in sorted(GENERATED.glob("*.py")):
        if stale.name not in keep:
            stale.unlink()
            print(f"removed {stale}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
