"""``nbcompile enumerate``."""

from __future__ import annotations

import click

from nbcompile.cli._common import check_output_file, counting_columns, progress_bar, workers_option
from nbcompile.errors import ConfigError


@click.command("enumerate")
@click.option(
    "--max-vertices",
    type=click.IntRange(2, 7),
    default=7,
    show_default=True,
    help="Largest cell, input and output included.",
)
@click.option("--max-edges", type=click.IntRange(1, 21), default=9, show_default=True, help="Most edges in a cell.")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="FILE.jsonl or FILE.npz [default: JSON Lines on stdout].",
)
@workers_option("Hashing processes", "the CPUs available, at most 8")
def enumerate_command(max_vertices: int, max_edges: int, out_path: str | None, workers: int | None) -> None:
    """Write every unique NAS-Bench-101 cell: module_hash and the matrix and ops the dataset stores.

    Cells come in the order upstream's enumeration first met them (vertices, edge bitmask, ops).
    """
    import time
    from pathlib import Path

    from nbcompile.space.cellfiles import cell_json, write_jsonl, write_npz
    from nbcompile.space.enumeration import NASBENCH_COUNTS, enumerate_cells

    path = Path(out_path) if out_path else None
    if path is not None and path.suffix not in (".jsonl", ".npz"):
        raise ConfigError(f"--out {out_path}: the file name must end in .jsonl or .npz")
    check_output_file(out_path, "--out")
    total = sum(NASBENCH_COUNTS[v] for v in range(2, max_vertices + 1)) if max_edges == 9 else None
    started = time.perf_counter()
    with progress_bar(*counting_columns("enumerating")) as progress:
        task = progress.add_task("cells", total=total)

        def counted(cells):
            for count, cell in enumerate(cells, 1):
                if count % 4096 == 0:
                    progress.update(task, completed=count)
                yield cell

        cells = counted(enumerate_cells(max_vertices, max_edges, workers))
        if path is None:
            count = 0
            for cell in cells:
                click.echo(cell_json(cell))
                count += 1
        else:
            count = (write_npz if path.suffix == ".npz" else write_jsonl)(cells, path)
    click.echo(f"{count:,} cells in {time.perf_counter() - started:.1f} s", err=True)
