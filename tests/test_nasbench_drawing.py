"""``ModelSpec.visualize()`` (nbcompile.nasbench.drawing): every pruned vertex and edge drawn, the
edges' bends, and its errors."""

from __future__ import annotations

import sys

import pytest
from example_cells import CHAIN, CONV1X1, CONV3X3, INPUT, MAXPOOL3X3, OUTPUT

from nbcompile.errors import MissingDependencyError


def test_visualize_draws_every_pruned_vertex_and_edge(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from nbcompile.nasbench import api

    # vertex 5 is cut off (it feeds nothing): 6 boxes and the 8 edges that remain
    matrix = [
        [0, 1, 1, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 1, 1],
        [0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0],
    ]
    figures_before = plt.get_fignums()
    spec = api.ModelSpec(matrix, [INPUT, CONV1X1, CONV3X3, CONV3X3, MAXPOOL3X3, "conv5x5", OUTPUT])
    figure = spec.visualize()
    assert isinstance(figure, Figure) and plt.get_fignums() == figures_before  # pyplot untouched
    axis = figure.axes[0]
    boxes = sorted(p.get_gid() for p in axis.patches if isinstance(p, FancyBboxPatch))
    edges = sorted(p.get_gid() for p in axis.patches if isinstance(p, FancyArrowPatch))
    assert boxes == [f"vertex-{v}" for v in range(6)]
    assert edges == sorted(["edge-0-1", "edge-0-2", "edge-0-3", "edge-1-5", "edge-2-5", "edge-3-4", "edge-4-5"])
    assert [t.get_text() for t in axis.texts] == [INPUT, CONV1X1, CONV3X3, CONV3X3, MAXPOOL3X3, OUTPUT]
    figure.savefig(tmp_path / "cell.png")
    assert (tmp_path / "cell.png").read_bytes()[:4] == b"\x89PNG"
    _, axes = plt.subplots()
    try:
        assert spec.visualize(axes) is axes.figure  # into the caller's axes
    finally:
        plt.close(axes.figure)


def test_edge_bends() -> None:
    from nbcompile.nasbench.drawing import edge_bend

    assert edge_bend(0, 1) == edge_bend(3, 4) == 0.0  # neighbours: straight
    assert edge_bend(0, 3) == pytest.approx(0.4) and edge_bend(0, 2) == pytest.approx(-0.25)
    assert edge_bend(0, 6) == pytest.approx(-0.85) and edge_bend(1, 6) == pytest.approx(0.7)


def test_visualize_errors(monkeypatch) -> None:
    from nbcompile.nasbench import api

    with pytest.raises(api.OutOfDomainError, match="nothing to draw"):
        api.ModelSpec([[0, 0], [0, 0]], [INPUT, OUTPUT]).visualize()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    with pytest.raises(
        MissingDependencyError, match=r'visualize\(\) needs matplotlib.*pip install "nbcompile\[plot\]"'
    ) as caught:
        api.ModelSpec(CHAIN, [INPUT, CONV3X3, OUTPUT]).visualize()
    assert isinstance(caught.value, ImportError)
