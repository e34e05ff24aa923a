"""A picture of a cell (upstream's ``api.ModelSpec.visualize``): matplotlib only, no graphviz.

Vertices are stacked top to bottom in their order (input first), as upstream's graphviz drawing
lays them out; an edge to the next vertex is straight, a longer one bends to one side. The figure
is a plain ``matplotlib.figure.Figure``: pyplot's global state is not touched. The drawing takes a
matrix and op names, not a spec, so that the search space knows nothing of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nbcompile.space.ops import CONV1X1, CONV3X3, INPUT, MAXPOOL3X3, OUTPUT

#: Fill colour of each op's box; an op outside the space is drawn red.
OP_COLORS: dict[str, str] = {
    INPUT: "#d9d9d9",
    OUTPUT: "#d9d9d9",
    CONV3X3: "#9ecae1",
    CONV1X1: "#a1d99b",
    MAXPOOL3X3: "#fdae6b",
}
_UNKNOWN_COLOR = "#fc9272"
#: Box size in data units; rows are one unit apart.
_BOX_WIDTH, _BOX_HEIGHT = 1.8, 0.45


def edge_bend(source: int, target: int) -> float:
    """Sideways reach (data units, signed) of the arrow ``source → target`` beyond the boxes'
    sides: 0 between neighbours (a straight arrow), else growing with the distance and alternating
    sides, so that long edges neither cross the boxes between nor lie on top of each other."""
    span = target - source
    if span == 1:
        return 0.0
    side = 1.0 if (source + target) % 2 else -1.0
    return side * (0.25 + 0.15 * (span - 2))


def draw_cell(matrix: Sequence[Sequence[int]], ops: Sequence[str], ax: Any = None) -> Any:
    """Draw the cell ``matrix``/``ops`` (upper-triangular; vertex 0 the input) into ``ax`` (a new
    Figure when None); returns the Figure. Needs matplotlib (callers check it with
    :func:`nbcompile.optional.require`, naming the feature the user asked for)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path

    count = len(ops)
    if ax is None:
        figure = Figure(figsize=(4.0, 0.7 * count + 0.3))
        ax = figure.add_subplot()
    half_w, half_h = _BOX_WIDTH / 2, _BOX_HEIGHT / 2
    for vertex, op in enumerate(ops):
        box = FancyBboxPatch(
            (-half_w, -vertex - half_h),
            _BOX_WIDTH,
            _BOX_HEIGHT,
            boxstyle="round,pad=0,rounding_size=0.08",
            facecolor=OP_COLORS.get(op, _UNKNOWN_COLOR),
            edgecolor="#444444",
            zorder=2,
            gid=f"vertex-{vertex}",
        )
        ax.add_patch(box)
        ax.text(0.0, -vertex, op, ha="center", va="center", fontsize=9, zorder=3)
    for source in range(count):
        for target in range(source + 1, count):
            if not matrix[source][target]:
                continue
            reach = edge_bend(source, target)
            if reach == 0.0:
                path = Path([(0.0, -source - half_h), (0.0, -target + half_h)])
            else:  # from a side to the same side; the quadratic curve reaches half its control offset
                x = half_w if reach > 0 else -half_w
                middle = (x + 2 * reach, -(source + target) / 2)
                path = Path([(x, -source), middle, (x, -target)], [Path.MOVETO, Path.CURVE3, Path.CURVE3])
            arrow = FancyArrowPatch(
                path=path,
                arrowstyle="-|>",
                mutation_scale=10,
                color="#333333",
                linewidth=1.0,
                zorder=1,
                gid=f"edge-{source}-{target}",
            )
            ax.add_patch(arrow)
    reach = max((abs(edge_bend(s, t)) for s in range(count) for t in range(s + 1, count) if matrix[s][t]), default=0.0)
    ax.set_xlim(-half_w - reach - 0.2, half_w + reach + 0.2)
    ax.set_ylim(-(count - 1) - 0.5, 0.5)
    ax.set_axis_off()
    return ax.figure
