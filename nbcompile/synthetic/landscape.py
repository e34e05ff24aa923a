"""Landscapes: how a synthetic fixture makes up the final validation accuracy of a training run.

``hashed`` (the default): the accuracy is a hash of the cell's module hash, so no search method can
beat random search on it. ``structured``: the accuracy follows the cell's structure (its ops, the
depth and width of its graph, its parameter count) plus noise per cell, per budget and per run, so
that searches that exploit structure have something to find; the four budgets are loosely
correlated, and the best cells are rare. Both are deterministic functions of the cell, the epoch
budget and the run's random generator; everything else in a fixture record is shared
(:mod:`nbcompile.synthetic.fixture`).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Protocol

from nbcompile.errors import DatasetError
from nbcompile.space.ops import CONV1X1, CONV3X3, MAXPOOL3X3, TRAIN_EPOCHS

if TYPE_CHECKING:  # the CLI imports this module at startup: keep it light
    from nbcompile.space.enumeration import EnumeratedCell

#: The shortest budget of the official files: the structured landscape's budget terms start there.
SHORTEST_EPOCHS = 4
_STANDARD_NORMAL = NormalDist()


@dataclass(frozen=True)
class CellTraits:
    """What the structured landscape reads off a cell."""

    conv3x3: int
    conv1x1: int
    maxpool: int
    #: Edges on the longest input → output path.
    depth: int
    #: In-degree of the output vertex: the branches the cell concatenates (and the input's projection).
    width: int
    #: Trainable parameters of the cell's canonical network.
    parameters: int

    @property
    def interior(self) -> int:
        """Vertices between input and output."""
        return self.conv3x3 + self.conv1x1 + self.maxpool


def cell_traits(matrix: Sequence[Sequence[int]], ops: Sequence[str], parameters: int) -> CellTraits:
    """The traits of a pruned cell (``matrix`` upper triangular, input first, output last: every
    vertex lies on an input → output path)."""
    size = len(ops)
    unreachable = -size
    longest = [0] * size  # edges on the longest path from the input (negative: unreachable)
    for vertex in range(1, size):
        best = unreachable
        for source in range(vertex):
            if matrix[source][vertex] and longest[source] + 1 > best:
                best = longest[source] + 1
        longest[vertex] = best
    ops = list(ops)
    return CellTraits(
        conv3x3=ops.count(CONV3X3),
        conv1x1=ops.count(CONV1X1),
        maxpool=ops.count(MAXPOOL3X3),
        depth=longest[-1],
        width=sum(row[-1] for row in matrix),
        parameters=parameters,
    )


def hashed_normal(key: str) -> float:
    """A standard normal number that is a function of ``key`` alone (through SHA-256)."""
    bits = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return _STANDARD_NORMAL.inv_cdf((bits + 0.5) / 2**64)


def trained_fraction(epochs: int) -> float:
    """How far ``epochs`` of training get (1 − 2^(−epochs/12)): both landscapes' runs, and the
    accuracy a fixture records halfway through a run."""
    return 1.0 - 0.5 ** (epochs / 12)


def budget_position(epochs: int) -> float:
    """Where ``epochs`` lies between the official budgets on a log scale: 0 at 4, 1/3 at 12, 2/3 at 36, 1 at 108."""
    return math.log(epochs / SHORTEST_EPOCHS) / math.log(TRAIN_EPOCHS / SHORTEST_EPOCHS)


class Landscape(Protocol):
    """Makes up the final validation accuracy of one run of a cell, drawing its run noise from
    ``repeat_rng`` (the run's own generator, which the fixture goes on to use)."""

    def final_validation(
        self, cell: EnumeratedCell, parameters: int, epochs: int, repeat_rng: random.Random
    ) -> float: ...


@dataclass(frozen=True)
class HashedLandscape:
    """The cell's "goodness" is a hash of its module hash: structure tells a search nothing."""

    def final_validation(self, cell: EnumeratedCell, parameters: int, epochs: int, repeat_rng: random.Random) -> float:
        """Validation accuracy at the end of one run; draws one number from ``repeat_rng``."""
        quality = int(cell.module_hash[:8], 16) / 0xFFFFFFFF
        return 0.55 + 0.40 * quality * trained_fraction(epochs) + repeat_rng.gauss(0.0, 0.003)


@dataclass(frozen=True)
class StructuredLandscape:
    """Accuracy from the cell's structure, on a log-error scale, plus noise.

    With ``t`` = :func:`budget_position` of the budget (0 at 4 epochs, 1 at 108) and ``early`` =
    max(0, 1 − t), the noise-free log validation error is::

        log_error = base + early_error · early^early_shape
                    − conv3x3 · #conv3x3 − conv1x1 · #conv1x1 + maxpool · #maxpool
                    − depth · (2t − 1) · min(depth, depth_cap)
                    − width · (width − 1)
                    − log_parameters · (t − early_parameters · early) · ln(parameters / 10⁶)
                    + maxpool_share · (#maxpool / #interior)³ + no_convolution · [no convolution]

    so conv3x3 helps most, max-pool hurts, depth hurts at short budgets and helps at long ones,
    parameters help at long budgets and slightly hurt at 4 epochs, and cells mostly of max-pools
    make a long tail of poor accuracies. A run's validation accuracy is
    1 − exp(log_error + cell_noise · z_cell + budget_noise · (1 + early_budget_noise · early²) · z_budget)
    plus a normal run noise of standard deviation run_noise · √(108 / epochs); z_cell (shared by every
    budget) and z_budget (one per budget) are standard normals hashed from the module hash.
    """

    base: float = -2.10
    early_error: float = 0.875
    early_shape: float = 1.7
    conv3x3: float = 0.045
    conv1x1: float = 0.02
    maxpool: float = 0.03
    depth: float = 0.04
    depth_cap: int = 5
    width: float = 0.03
    log_parameters: float = 0.06
    early_parameters: float = 0.5
    maxpool_share: float = 1.3
    no_convolution: float = 0.5
    cell_noise: float = 0.045
    budget_noise: float = 0.04
    early_budget_noise: float = 2.0
    run_noise: float = 0.003

    def log_error(self, traits: CellTraits, epochs: int) -> float:
        """The noise-free natural log of the validation error (see the class docstring)."""
        t = budget_position(epochs)
        early = max(0.0, 1.0 - t)
        share = traits.maxpool / traits.interior if traits.interior else 0.0
        return (
            self.base
            + self.early_error * early**self.early_shape
            - self.conv3x3 * traits.conv3x3
            - self.conv1x1 * traits.conv1x1
            + self.maxpool * traits.maxpool
            - self.depth * (2 * t - 1) * min(traits.depth, self.depth_cap)
            - self.width * (traits.width - 1)
            - self.log_parameters * (t - self.early_parameters * early) * math.log(traits.parameters / 1e6)
            + self.maxpool_share * share**3
            + self.no_convolution * (traits.conv3x3 + traits.conv1x1 == 0)
        )

    def noise_free_accuracy(self, traits: CellTraits, epochs: int) -> float:
        """The validation accuracy without any noise (the median over cells of equal traits)."""
        return 1.0 - math.exp(self.log_error(traits, epochs))

    def cell_deviation(self, module_hash: str, epochs: int) -> float:
        """The cell's own log-error deviation at a budget: one part shared by all budgets, one per budget."""
        early = max(0.0, 1.0 - budget_position(epochs))
        shared = hashed_normal(f"{module_hash}/structured")
        own = hashed_normal(f"{module_hash}/structured/{epochs}")
        return self.cell_noise * shared + self.budget_noise * (1 + self.early_budget_noise * early**2) * own

    def final_validation(self, cell: EnumeratedCell, parameters: int, epochs: int, repeat_rng: random.Random) -> float:
        """Validation accuracy at the end of one run; draws one number from ``repeat_rng``."""
        traits = cell_traits(cell.matrix, cell.ops, parameters)
        log_error = self.log_error(traits, epochs) + self.cell_deviation(cell.module_hash, epochs)
        return 1.0 - math.exp(log_error) + repeat_rng.gauss(0.0, self.run_noise * math.sqrt(TRAIN_EPOCHS / epochs))


#: The landscapes a fixture can be written with, by name.
LANDSCAPES: dict[str, Landscape] = {"hashed": HashedLandscape(), "structured": StructuredLandscape()}
DEFAULT_LANDSCAPE = "hashed"


def landscape_named(name: str) -> Landscape:
    """The landscape called ``name``; DatasetError naming the choices if there is none."""
    try:
        return LANDSCAPES[name]
    except KeyError:
        raise DatasetError(f"unknown landscape {name!r}; the landscapes are {', '.join(LANDSCAPES)}") from None
