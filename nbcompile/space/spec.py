"""Cell specs: parsing, validation and pruning of a NAS-Bench-101 cell (matrix + ops)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from nbcompile.errors import OutOfDomainError, SpecError
from nbcompile.space import graph
from nbcompile.space.ops import AVAILABLE_OPS, HASH_LABEL, INPUT, MAX_EDGES, MAX_VERTICES, OP_ALIASES, OUTPUT

_OP_CHOICES = "input, output, conv3x3-bn-relu, conv1x1-bn-relu, maxpool3x3 (or conv3x3, conv1x1)"


def _parse_matrix(matrix: Any) -> graph.Matrix:
    """A square 0/1 upper-triangular matrix as a tuple of int tuples, or SpecError."""
    if isinstance(matrix, str):
        size = math.isqrt(len(matrix))
        if size * size != len(matrix) or not matrix:
            raise SpecError(f"matrix string has {len(matrix)} characters, not a square number")
        bad = next((i for i, char in enumerate(matrix) if char not in "01"), None)
        if bad is not None:
            raise SpecError(f"matrix string has {matrix[bad]!r} at position {bad}: only '0' and '1' are allowed")
        matrix = [[int(char) for char in matrix[r * size : (r + 1) * size]] for r in range(size)]
    if type(matrix) is list and matrix and all(type(row) is list for row in matrix):
        fast = _plain_rows(matrix) if all(len(row) == len(matrix) for row in matrix) else None
        if fast is not None:
            return fast
    if isinstance(matrix, np.ndarray):
        if matrix.ndim != 2:
            raise SpecError(f"matrix must be 2-D, got {matrix.ndim} dimensions")
        rows = matrix.tolist()
    elif isinstance(matrix, Sequence) and not isinstance(matrix, (str, bytes)):
        rows = []
        for r, row in enumerate(matrix):
            if isinstance(row, np.ndarray):
                row = row.tolist()
            if not isinstance(row, Sequence) or isinstance(row, (str, bytes)):
                raise SpecError(f"matrix[{r}] must be a list of 0/1 entries, got {row!r}")
            rows.append(list(row))
    else:
        raise SpecError(f"matrix must be a list of lists or a numpy array, got {type(matrix).__name__}")
    size = len(rows)
    if size == 0:
        raise SpecError("matrix is empty")
    for r, row in enumerate(rows):
        if len(row) != size:
            raise SpecError(f"matrix must be square: it has {size} rows but row {r} has {len(row)} entries")
    fast = _plain_rows(rows)
    if fast is not None:
        return fast
    parsed = []
    for r, row in enumerate(rows):
        values = []
        for c, entry in enumerate(row):
            value = _entry_value(entry)
            if value is None:
                raise SpecError(f"matrix[{r}][{c}] = {entry!r} is not 0 or 1")
            if value and r == c:
                raise SpecError(f"matrix[{r}][{c}] = 1 is on the diagonal: a vertex cannot feed itself")
            if value and r > c:
                raise SpecError(f"matrix[{r}][{c}] = 1 is below the diagonal: cells are upper-triangular DAGs")
            values.append(value)
        parsed.append(tuple(values))
    return tuple(parsed)


_BINARY = frozenset((0, 1))


def _plain_rows(rows: list[list[Any]]) -> graph.Matrix | None:
    """The common case in one pass: 0/1 entries, strictly upper triangular; None otherwise.

    Anything this does not accept goes through the checking loop, which names the bad entry.
    """
    parsed = []
    try:
        for r, row in enumerate(rows):
            if not _BINARY.issuperset(row) or any(row[: r + 1]):
                return None
            parsed.append(tuple(map(int, row)))
    except TypeError:  # an unhashable entry
        return None
    return tuple(parsed)


def _entry_value(entry: Any) -> int | None:
    """0 or 1 for an int, bool or float entry equal to 0 or 1; else None."""
    if isinstance(entry, (bool, np.bool_)):
        return int(entry)
    if isinstance(entry, (int, float, np.integer, np.floating)) and entry in (0, 1):
        return int(entry)
    return None


def _parse_ops(ops: Any, size: int, allow_unknown_ops: bool = False) -> tuple[str, ...]:
    """Op names normalised to their full form, or SpecError.

    With ``allow_unknown_ops`` a name outside the space is kept as given (upstream's ModelSpec
    accepts any op; :meth:`ModelSpec.is_valid` then says whether the pruned cell uses one)."""
    if isinstance(ops, str):
        ops = ops.split(",")
    if isinstance(ops, np.ndarray):
        ops = ops.tolist()
    if not isinstance(ops, Sequence):
        raise SpecError(f"ops must be a list of op names, got {type(ops).__name__}")
    if len(ops) != size:
        raise SpecError(f"ops has {len(ops)} entries but the matrix has {size} vertices")
    names = []
    for i, op in enumerate(ops):
        if not isinstance(op, str):
            raise SpecError(f"ops[{i}] = {op!r} is not a string")
        if op not in OP_ALIASES:
            if allow_unknown_ops:
                names.append(op)
                continue
            raise SpecError(f"ops[{i}] = {op!r} is not a NAS-Bench-101 op (expected {_OP_CHOICES})")
        names.append(OP_ALIASES[op])
    return tuple(names)


def _as_array(matrix: graph.Matrix) -> np.ndarray:
    array = np.array(matrix, dtype=np.int64).reshape(len(matrix), len(matrix))
    array.setflags(write=False)
    return array


class ModelSpec:
    """A NAS-Bench-101 cell: an upper-triangular 0/1 adjacency matrix and one op per vertex.

    The constructor checks that the spec is well formed (``SpecError`` otherwise) and prunes
    every vertex that is not on an input→output path, as upstream does. Whether the pruned cell is
    inside the NAS-Bench-101 space is answered by :meth:`is_valid` / :meth:`validate`.

    Attributes mirror upstream ``api.ModelSpec``: ``original_matrix``/``original_ops`` (as given,
    op names in full), ``matrix``/``ops`` (pruned; ``None`` when the output is unreachable) and
    ``valid_spec`` (whether the output is reachable from the input). ``data_format`` is kept as
    given, as upstream keeps it; generated PyTorch modules are always channels-first.

    ``allow_unknown_ops=False`` (the compiler's default) rejects an op name outside the space with
    SpecError. With True (the upstream-compatible :class:`nbcompile.nasbench.api.ModelSpec`) the
    spec builds and :meth:`is_valid` is False when the pruned cell uses such an op.
    """

    def __init__(
        self, matrix: Any, ops: Any, data_format: str = "channels_last", *, allow_unknown_ops: bool = False
    ) -> None:
        self._original = _parse_matrix(matrix)
        self._original_ops = _parse_ops(ops, len(self._original), allow_unknown_ops)
        self.data_format = data_format
        kept = graph.reachable_vertices(self._original)
        self.valid_spec = len(kept) >= 2
        self.kept_vertices: tuple[int, ...] = tuple(kept) if self.valid_spec else ()
        self._pruned = graph.relabel(self._original, self.kept_vertices)
        self._pruned_ops = tuple(self._original_ops[v] for v in self.kept_vertices)

    # --- upstream-compatible views -------------------------------------------------------------
    @property
    def original_matrix(self) -> np.ndarray:
        return _as_array(self._original)

    @property
    def original_ops(self) -> list[str]:
        return list(self._original_ops)

    @property
    def matrix(self) -> np.ndarray | None:
        """The pruned matrix as an int array, or None when the output is unreachable."""
        return _as_array(self._pruned) if self.valid_spec else None

    @property
    def ops(self) -> list[str] | None:
        """The pruned op list (full names), or None when the output is unreachable."""
        return list(self._pruned_ops) if self.valid_spec else None

    # --- plain-data views ----------------------------------------------------------------------
    @property
    def original_matrix_tuple(self) -> graph.Matrix:
        return self._original

    @property
    def original_ops_tuple(self) -> tuple[str, ...]:
        return self._original_ops

    @property
    def pruned_matrix(self) -> graph.Matrix:
        """The pruned matrix as a tuple of int tuples (empty when the output is unreachable)."""
        return self._pruned

    @property
    def pruned_ops(self) -> tuple[str, ...]:
        return self._pruned_ops

    @property
    def num_vertices(self) -> int:
        """Vertices after pruning."""
        return len(self._pruned)

    @property
    def num_edges(self) -> int:
        """Edges after pruning."""
        return sum(map(sum, self._pruned))

    # --- validity ------------------------------------------------------------------------------
    def domain_error(self) -> str | None:
        """Why the pruned cell is outside the NAS-Bench-101 space, or None if it is inside."""
        return self._domain_error

    @cached_property
    def _domain_error(self) -> str | None:
        size = len(self._original)
        if size < 2:
            return "a cell needs an input and an output vertex, this one has 1 vertex"
        if not self.valid_spec:
            return f"the output (vertex {size - 1}) is not reachable from the input (vertex 0)"
        if self.num_vertices > MAX_VERTICES:
            return f"{self.num_vertices} vertices after pruning: NAS-Bench-101 cells have at most {MAX_VERTICES}"
        if self.num_edges > MAX_EDGES:
            return f"{self.num_edges} edges after pruning: NAS-Bench-101 cells have at most {MAX_EDGES}"
        last = len(self._pruned_ops) - 1
        for position, (vertex, op) in enumerate(zip(self.kept_vertices, self._pruned_ops)):
            if position == 0 and op != INPUT:
                return f"ops[{vertex}] = {op!r}: the first vertex must be 'input'"
            if position == last and op != OUTPUT:
                return f"ops[{vertex}] = {op!r}: the last vertex must be 'output'"
            if 0 < position < last and op in (INPUT, OUTPUT):
                return f"ops[{vertex}] = {op!r}: only the first vertex is 'input' and only the last 'output'"
            if 0 < position < last and op not in AVAILABLE_OPS:
                return f"ops[{vertex}] = {op!r} is not a NAS-Bench-101 op (expected {', '.join(AVAILABLE_OPS)})"
        return None

    def is_valid(self) -> bool:
        """True if the pruned cell is in the NAS-Bench-101 space (never raises for >7 vertices)."""
        return self.domain_error() is None

    def validate(self) -> ModelSpec:
        """Return self, or raise OutOfDomainError saying why the cell is outside the space."""
        error = self.domain_error()
        if error is not None:
            raise OutOfDomainError(error)
        return self

    # --- identity ------------------------------------------------------------------------------
    @property
    def labels(self) -> tuple[int, ...]:
        """Hash labels of the pruned vertices: -1 input, -2 output, op index otherwise."""
        self.validate()
        return tuple(HASH_LABEL[op] for op in self._pruned_ops)

    @cached_property
    def module_hash(self) -> str:
        """The dataset key of this cell (bit-exact with NAS-Bench-101's ``module_hash``)."""
        return graph.module_hash(self._pruned, self.labels)

    def hash_spec(self, canonical_ops: Sequence[str] = AVAILABLE_OPS) -> str:
        """Upstream-compatible alias of :attr:`module_hash` (only the benchmark's op order)."""
        if tuple(canonical_ops) != AVAILABLE_OPS:
            raise ValueError(f"canonical_ops must be {list(AVAILABLE_OPS)}")
        return self.module_hash

    def canonical(self) -> ModelSpec:
        """The pruned cell in the labeling NAS-Bench-101 stored and trained (upstream's ``graph_util.hash_module``)."""
        order = graph.canonical_order(self._pruned, self.labels)
        return ModelSpec(graph.relabel(self._pruned, order), [self._pruned_ops[v] for v in order])

    def is_canonical(self) -> bool:
        """True if the pruned cell already is in the dataset's canonical labeling."""
        canonical = self.canonical()
        return (canonical.pruned_matrix, canonical.pruned_ops) == (self._pruned, self._pruned_ops)

    # --- conversion ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"matrix": ..., "ops": ...}`` of the spec as given (op names in full)."""
        return {"matrix": [list(row) for row in self._original], "ops": list(self._original_ops)}

    def pruned_dict(self) -> dict[str, Any]:
        """``{"matrix": ..., "ops": ...}`` of the pruned spec."""
        return {"matrix": [list(row) for row in self._pruned], "ops": list(self._pruned_ops)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **options: Any) -> ModelSpec:
        """Build from ``{"matrix", "ops"}`` or the query API's ``{"module_adjacency", "module_operations"}``.

        ``options`` go to the constructor (``allow_unknown_ops``)."""
        for matrix_key, ops_key in (("matrix", "ops"), ("module_adjacency", "module_operations")):
            if matrix_key in data and ops_key in data:
                return cls(data[matrix_key], data[ops_key], **options)
        known = ("matrix", "ops", "module_adjacency", "module_operations")
        present = ", ".join(repr(key) for key in known if key in data) or "none of them"
        raise SpecError(
            f"spec needs the keys 'matrix' and 'ops' (or 'module_adjacency' and 'module_operations'); it has {present}"
        )

    def __repr__(self) -> str:
        return f"ModelSpec(matrix={[list(r) for r in self._original]}, ops={list(self._original_ops)})"


def as_model_spec(spec: Any, allow_unknown_ops: bool = False) -> ModelSpec:
    """Accept a ModelSpec, a mapping, or any object with matrix/ops attributes (e.g. upstream's).

    ``allow_unknown_ops``: build specs whose ops lie outside the space (see :class:`ModelSpec`)."""
    if isinstance(spec, ModelSpec):
        return spec
    if isinstance(spec, Mapping):
        return ModelSpec.from_dict(spec, allow_unknown_ops=allow_unknown_ops)
    matrix = getattr(spec, "original_matrix", None)
    ops = getattr(spec, "original_ops", None)
    if matrix is None or ops is None:
        matrix, ops = getattr(spec, "matrix", None), getattr(spec, "ops", None)
    if matrix is None or ops is None:
        raise SpecError(f"cannot read a cell spec from {type(spec).__name__}: it needs matrix and ops")
    return ModelSpec(matrix, ops, getattr(spec, "data_format", "channels_last"), allow_unknown_ops=allow_unknown_ops)
