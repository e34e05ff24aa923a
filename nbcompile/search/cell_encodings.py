"""Encodings A, B and C of a cell as flat parameters, as the NAS-Bench-101 paper's study used them.

The model-based optimizers (SMAC, TPE, Hyperband, BOHB, REINFORCE) search a flat space of
parameters; an encoding maps a configuration of that space to a cell. The three encodings are
those of the reference implementation of the paper's optimizer comparison (automl/nas_benchmarks,
``NASCifar10A/B/C``); each has five categorical op parameters ``op_node_0`` … ``op_node_4`` for
the interior vertices 1…5, and:

* **A**: 21 binary edge parameters ``edge_0`` … ``edge_20``, one per entry of the 7×7 upper
  triangle in ``numpy.triu_indices(7, 1)`` order (row by row: (0,1), (0,2), …, (5,6));
* **B**: 9 categorical edge parameters ``edge_0`` … ``edge_8``, each naming one of the 21
  upper-triangle positions to set (two may name the same position, giving fewer edges). The
  reference sets bit ``20 − i`` of upstream's column-major edge bit string for position ``i``, so
  position 0 is the entry (5,6) and position 20 the entry (0,1) (:data:`B_POSITIONS`);
* **C**: 21 continuous edge weights ``edge_0`` … ``edge_20`` in [0, 1] (``triu_indices`` order)
  and an integer ``num_edges`` in 0…9: the ``num_edges`` largest weights become edges. Equal
  weights are taken from the highest position down, which is what the reference's
  ``argsort(weights)[::-1]`` gives when its sort keeps ties in order.

A configuration decodes to ``None`` when it is outside the space: more than 9 edges in the
unpruned matrix (only A can have them), or a cell that is invalid after pruning (the output not
reachable from the input). The reference records both as invalid: validation and test error 1,
no cost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nbcompile.space.ops import CONV1X1, CONV3X3, INPUT, MAX_EDGES, MAX_VERTICES, MAXPOOL3X3, OUTPUT
from nbcompile.space.spec import ModelSpec

if TYPE_CHECKING:
    from ConfigSpace import ConfigurationSpace

#: The op choices in the reference's order.
OP_CHOICES: tuple[str, ...] = (CONV1X1, CONV3X3, MAXPOOL3X3)
#: Interior vertices, each with an op parameter.
OP_SPOTS = MAX_VERTICES - 2
OP_PARAMETERS: tuple[str, ...] = tuple(f"op_node_{i}" for i in range(OP_SPOTS))
#: Entries of the 7×7 upper triangle, in ``numpy.triu_indices(7, 1)`` order (encodings A and C).
TRIU_POSITIONS: tuple[tuple[int, int], ...] = tuple(
    (int(row), int(col)) for row, col in zip(*np.triu_indices(MAX_VERTICES, 1))
)
EDGE_POSITIONS = len(TRIU_POSITIONS)


def _column_major_position(bit: int) -> tuple[int, int]:
    """The entry of upstream's edge bit ``bit`` (``graph_util.gen_is_edge_fn``): column by column."""
    col = 1
    while col * (col + 1) // 2 <= bit:
        col += 1
    return bit - col * (col - 1) // 2, col


#: The entry each value of an encoding-B edge parameter sets: position i is bit 20 − i.
B_POSITIONS: tuple[tuple[int, int], ...] = tuple(
    _column_major_position(EDGE_POSITIONS - 1 - i) for i in range(EDGE_POSITIONS)
)
ENCODINGS = ("A", "B", "C")
NUM_EDGES = "num_edges"


@dataclass(frozen=True)
class Parameter:
    """One parameter of an encoding: categorical (``choices``), ``float`` or ``integer`` in [lower, upper]."""

    name: str
    kind: str
    choices: tuple[Any, ...] = ()
    lower: float = 0.0
    upper: float = 1.0


def _cell(matrix: np.ndarray, config: Mapping[str, Any]) -> ModelSpec | None:
    """The cell of an unpruned 7×7 matrix and the config's ops, or None outside the space."""
    if int(matrix.sum()) > MAX_EDGES:
        return None
    ops = [INPUT, *(_op(config, name) for name in OP_PARAMETERS), OUTPUT]
    spec = ModelSpec(matrix.tolist(), ops)
    return spec if spec.is_valid() else None


def _op(config: Mapping[str, Any], name: str) -> str:
    op = config[name]
    if op not in OP_CHOICES:
        raise ValueError(f"{name} = {op!r} is not one of {', '.join(OP_CHOICES)}")
    return str(op)


def _matrix(entries: Any) -> np.ndarray:
    matrix = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int64)
    for row, col in entries:
        matrix[row, col] = 1
    return matrix


def decode_a(config: Mapping[str, Any]) -> ModelSpec | None:
    """Encoding A: ``edge_i`` in {0, 1} sets the i-th ``triu_indices`` entry."""
    edges = []
    for i, position in enumerate(TRIU_POSITIONS):
        value = int(config[f"edge_{i}"])
        if value not in (0, 1):
            raise ValueError(f"edge_{i} = {config[f'edge_{i}']!r}: encoding A's edges are 0 or 1")
        if value:
            edges.append(position)
    return _cell(_matrix(edges), config)


def decode_b(config: Mapping[str, Any]) -> ModelSpec | None:
    """Encoding B: each of ``edge_0`` … ``edge_8`` names a position (0…20) of :data:`B_POSITIONS` to set."""
    edges = []
    for i in range(MAX_EDGES):
        position = int(config[f"edge_{i}"])
        if not 0 <= position < EDGE_POSITIONS:
            raise ValueError(f"edge_{i} = {config[f'edge_{i}']!r}: encoding B's positions are 0…{EDGE_POSITIONS - 1}")
        edges.append(B_POSITIONS[position])
    return _cell(_matrix(edges), config)


def decode_c(config: Mapping[str, Any]) -> ModelSpec | None:
    """Encoding C: the ``num_edges`` largest weights ``edge_i`` become edges (ties: highest position first)."""
    weights = [float(config[f"edge_{i}"]) for i in range(EDGE_POSITIONS)]
    count = int(config[NUM_EDGES])
    if not 0 <= count <= MAX_EDGES:
        raise ValueError(f"num_edges = {config[NUM_EDGES]!r}: encoding C's num_edges is 0…{MAX_EDGES}")
    order = sorted(range(EDGE_POSITIONS), key=lambda i: (weights[i], i), reverse=True)
    return _cell(_matrix(TRIU_POSITIONS[i] for i in order[:count]), config)


@dataclass(frozen=True)
class Encoding:
    """An encoding of a cell: its parameters and its decoder."""

    name: str
    parameters: tuple[Parameter, ...]
    decode: Callable[[Mapping[str, Any]], ModelSpec | None]

    @property
    def categorical(self) -> bool:
        """Every parameter is categorical (REINFORCE needs that)."""
        return all(p.kind == "categorical" for p in self.parameters)

    def configuration_space(self, seed: int | None = None) -> ConfigurationSpace:
        """The encoding as a ConfigSpace 1.x space (the ``search`` extra)."""
        from ConfigSpace import (
            CategoricalHyperparameter,
            ConfigurationSpace,
            UniformFloatHyperparameter,
            UniformIntegerHyperparameter,
        )

        space = ConfigurationSpace(seed=seed)
        for p in self.parameters:
            if p.kind == "categorical":
                space.add(CategoricalHyperparameter(p.name, list(p.choices)))
            elif p.kind == "float":
                space.add(UniformFloatHyperparameter(p.name, p.lower, p.upper))
            else:
                space.add(UniformIntegerHyperparameter(p.name, int(p.lower), int(p.upper)))
        return space


_OPS = tuple(Parameter(name, "categorical", OP_CHOICES) for name in OP_PARAMETERS)

ENCODING: dict[str, Encoding] = {
    "A": Encoding(
        "A",
        _OPS + tuple(Parameter(f"edge_{i}", "categorical", (0, 1)) for i in range(EDGE_POSITIONS)),
        decode_a,
    ),
    "B": Encoding(
        "B",
        _OPS + tuple(Parameter(f"edge_{i}", "categorical", tuple(range(EDGE_POSITIONS))) for i in range(MAX_EDGES)),
        decode_b,
    ),
    "C": Encoding(
        "C",
        (
            *_OPS,
            Parameter(NUM_EDGES, "integer", lower=0, upper=MAX_EDGES),
            *(Parameter(f"edge_{i}", "float") for i in range(EDGE_POSITIONS)),
        ),
        decode_c,
    ),
}


def encoding(name: str) -> Encoding:
    """The encoding called ``name`` (A, B or C); ValueError naming the choices otherwise."""
    if name not in ENCODING:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got {name!r}")
    return ENCODING[name]


def encode_a(spec: ModelSpec) -> dict[str, Any]:
    """A configuration of encoding A that decodes to ``spec``'s cell (same module hash).

    A cell of fewer than 7 vertices keeps its interior vertices first; the vertices it lacks come
    before the output, unconnected, with the first op choice (pruning removes them)."""
    matrix = np.array(spec.original_matrix_tuple, dtype=np.int64)
    ops = list(spec.original_ops_tuple)
    size = len(ops)
    if size > MAX_VERTICES:
        raise ValueError(f"a cell of {size} vertices does not fit encoding A's {MAX_VERTICES}")
    # vertex v of the spec goes to v, its output (last vertex) to 6
    place = [*range(size - 1), MAX_VERTICES - 1]
    padded = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int64)
    padded[np.ix_(place, place)] = matrix
    padded_ops = [*ops[:-1], *[OP_CHOICES[0]] * (MAX_VERTICES - size), ops[-1]]
    config: dict[str, Any] = {name: padded_ops[i + 1] for i, name in enumerate(OP_PARAMETERS)}
    config.update({f"edge_{i}": int(padded[row, col]) for i, (row, col) in enumerate(TRIU_POSITIONS)})
    return config
