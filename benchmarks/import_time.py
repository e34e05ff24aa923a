"""Import time of nbcompile's entry points, for one or more checkouts.

    python benchmarks/import_time.py CHECKOUT [CHECKOUT ...]

Each figure is the median of 9 fresh interpreters, less the median of 9 that import nothing.
"""

import os
import statistics
import subprocess
import sys
import time


def t(code, cwd):
    xs = []
    for _ in range(9):
        s = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=cwd, check=True, env={**os.environ, "PYTHONPATH": cwd})
        xs.append(time.perf_counter() - s)
    return statistics.median(xs)


for cwd in sys.argv[1:]:
    base = t("pass", cwd)
    print(
        cwd,
        {
            c: round((t(c, cwd) - base) * 1000)
            for c in ["import nbcompile.nasbench", "import nbcompile", "import nbcompile.cli"]
        },
        "ms (median of 9, interpreter start subtracted)",
    )
