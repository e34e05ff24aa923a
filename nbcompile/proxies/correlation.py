"""How well each proxy ranks cells by their trained accuracy: Spearman's ρ and Kendall's τ-b
(numpy alone, ties as average ranks), against the dataset's mean validation and mean test
accuracy at 108 epochs, with the published figures beside ours.

Kendall's τ-b is computed in O(n log n) (Knight's algorithm: the discordant pairs are the
inversions of one variable once the pairs are sorted by the other, counted by a merge sort), so
that all 423,624 cells take seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

#: Where the published figures come from.
ABDELFATTAH_2021 = (
    'Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021: all 423,624 cells, '
    "stem 128, one CIFAR-10 training batch of 256"
)
MELLOR_2021 = 'Mellor et al., "Neural Architecture Search without Training", ICML 2021'


@dataclass(frozen=True)
class PublishedFigure:
    """A published correlation of a proxy with accuracy on NAS-Bench-101."""

    statistic: str
    value: float
    source: str


#: The published correlations on NAS-Bench-101, by proxy: the one place they are written.
PUBLISHED: dict[str, PublishedFigure] = {
    "grad_norm": PublishedFigure("Spearman |rho|", 0.198, ABDELFATTAH_2021),
    "snip": PublishedFigure("Spearman |rho|", 0.164, ABDELFATTAH_2021),
    "grasp": PublishedFigure("Spearman |rho|", 0.448, ABDELFATTAH_2021),
    "fisher": PublishedFigure("Spearman |rho|", 0.257, ABDELFATTAH_2021),
    "synflow": PublishedFigure("Spearman |rho|", 0.372, ABDELFATTAH_2021),
    "jacob_cov": PublishedFigure("Spearman |rho|", 0.378, ABDELFATTAH_2021),
    "nwot": PublishedFigure("Kendall tau", 0.285, MELLOR_2021),
}


def average_ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1…n of ``values``; tied values share the mean of the ranks they span."""
    array = np.asarray(values, dtype=np.float64)
    order = np.argsort(array, kind="stable")
    ordered = array[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # first index of each run of ties
    ends = np.r_[starts[1:], len(array)]
    mean_rank = (starts + ends + 1) / 2.0  # ranks starts+1 … ends, averaged
    ranks = np.empty(len(array), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's ρ: Pearson's correlation of the average ranks; NaN if either is constant or
    fewer than 2 values."""
    rx, ry = average_ranks(x), average_ranks(y)
    if len(rx) != len(ry):
        raise ValueError(f"x and y differ in length: {len(rx)} and {len(ry)}")
    dx, dy = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / denominator if denominator > 0 else math.nan


def _tied_pairs(values: np.ndarray) -> int:
    """Pairs of equal values, Σ t(t−1)/2 over the runs of ties of a sorted array."""
    _, counts = np.unique(values, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def count_inversions(values: Sequence[float] | np.ndarray) -> int:
    """Pairs i < j with values[i] > values[j], by a bottom-up merge sort vectorised over runs.

    At width w the array is runs of w sorted values; each pair of runs is merged by a stable sort
    of (pair, value), which puts a left element before a right one it ties. An element of a right
    run then has len(left) − (left elements before it in the merged pair) inversions against it.
    """
    ranks = np.unique(np.asarray(values), return_inverse=True)[1].astype(np.int64).ravel()
    n = len(ranks)
    position = np.arange(n, dtype=np.int64)
    total, width = 0, 1
    while width < n:
        pair = position // (2 * width)
        order = np.argsort(pair * n + ranks, kind="stable")
        merged_pair = pair[order]
        is_left = ((position // width) % 2 == 0)[order]
        left_through = np.cumsum(is_left)  # left elements at or before each merged position
        pair_start = np.searchsorted(merged_pair, merged_pair, side="left")
        left_before_pair = np.where(pair_start > 0, left_through[pair_start - 1], 0)
        left_size = np.clip(n - merged_pair * 2 * width, 0, width)
        total += int((left_size - (left_through - left_before_pair))[~is_left].sum())
        ranks = ranks[order]
        width *= 2
    return total


def kendall_tau_b(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Kendall's τ-b, (C − D)/√((n₀ − n₁)(n₀ − n₂)) with n₁, n₂ the pairs tied in x, in y; NaN
    if either is constant or fewer than 2 values."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(xs) != len(ys):
        raise ValueError(f"x and y differ in length: {len(xs)} and {len(ys)}")
    n = len(xs)
    order = np.lexsort((ys, xs))  # by x, ties in x by y: pairs tied in x are not inversions of y
    xs, ys = xs[order], ys[order]
    pairs = n * (n - 1) // 2
    tied_x, tied_y = _tied_pairs(xs), _tied_pairs(ys)
    starts = np.r_[True, (xs[1:] != xs[:-1]) | (ys[1:] != ys[:-1])]
    joint_counts = np.diff(np.r_[np.flatnonzero(starts), n])
    tied_both = int((joint_counts * (joint_counts - 1) // 2).sum())
    discordant = count_inversions(ys)
    concordant_minus_discordant = pairs - tied_x - tied_y + tied_both - 2 * discordant
    denominator = math.sqrt(float(pairs - tied_x) * float(pairs - tied_y))
    return concordant_minus_discordant / denominator if denominator > 0 else math.nan


@dataclass(frozen=True)
class ProxyCorrelation:
    """One proxy's rank correlations with the mean accuracies over ``cells`` cells (those with a
    finite score and accuracies), and the published figure, if any."""

    proxy: str
    cells: int
    spearman_validation: float
    kendall_validation: float
    spearman_test: float
    kendall_test: float
    published: PublishedFigure | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def correlate(scores: Mapping[str, np.ndarray], validation: np.ndarray, test: np.ndarray) -> list[ProxyCorrelation]:
    """The correlations of every proxy in ``scores`` (arrays aligned with ``validation`` and
    ``test``), each over the cells where the score and both accuracies are finite."""
    rows = []
    for name, values in scores.items():
        values = np.asarray(values, dtype=np.float64)
        kept = np.isfinite(values) & np.isfinite(validation) & np.isfinite(test)
        v, a, t = values[kept], validation[kept], test[kept]
        rows.append(
            ProxyCorrelation(
                name,
                int(kept.sum()),
                spearman(v, a),
                kendall_tau_b(v, a),
                spearman(v, t),
                kendall_tau_b(v, t),
                PUBLISHED.get(name),
            )
        )
    return rows


def markdown_table(rows: Sequence[ProxyCorrelation]) -> str:
    """The correlations as a Markdown table, the published figures beside them, and their sources."""
    lines = [
        "| proxy | cells | Spearman ρ (valid) | Kendall τ (valid) | Spearman ρ (test) | Kendall τ (test) | published |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    sources: list[str] = []
    for row in rows:
        published = ""
        if row.published is not None:
            if row.published.source not in sources:
                sources.append(row.published.source)
            statistic = row.published.statistic.replace("|", "\\|")  # a bare bar would end the cell
            published = f"{statistic} {row.published.value:.3f} [{sources.index(row.published.source) + 1}]"
        numbers = (row.spearman_validation, row.kendall_validation, row.spearman_test, row.kendall_test)
        lines.append(
            f"| {row.proxy} | {row.cells:,} | " + " | ".join(f"{n:.3f}" for n in numbers) + f" | {published} |"
        )
    lines += ["", *(f"[{number}] {source}" for number, source in enumerate(sources, 1))]
    return "\n".join(lines).rstrip() + "\n"


def _finite_or_none(value: object) -> object:
    """JSON has no NaN: an undefined correlation is written as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def correlation_document(rows: Sequence[ProxyCorrelation], dataset: str, epochs: int) -> dict[str, object]:
    """The correlations as a JSON document (an undefined correlation as null)."""
    return {
        "dataset": dataset,
        "epochs": epochs,
        "accuracy": "mean over the repeats of each cell",
        "ties": "average ranks (Spearman), tau-b (Kendall)",
        "correlations": [{key: _finite_or_none(value) for key, value in row.as_dict().items()} for row in rows],
    }
