"""Lowering of a validated cell spec and a config to a plain-data plan of the whole network.

The plan decides everything the generated code contains: layer names and shapes, the value each
vertex reads (projected, truncated or as is), the sums, the concatenation order and the
input→output projection. Code generation only renders it.
"""

from __future__ import annotations

from dataclasses import dataclass

from nbcompile.channels import compute_vertex_channels
from nbcompile.config import NetworkConfig
from nbcompile.ops import KERNEL_SIZE, MAXPOOL3X3
from nbcompile.spec import ModelSpec

#: Image side the FLOP count is given for (CIFAR-10).
IMAGE_SIZE = 32
#: Name of a cell's input inside its forward.
CELL_INPUT = "x"


@dataclass(frozen=True)
class ConvLayer:
    """A conv (no bias) → BatchNorm → ReLU layer."""

    name: str
    in_channels: int
    out_channels: int
    kernel_size: int

    @property
    def parameters(self) -> int:
        """Trainable parameters: the kernel plus BatchNorm's gamma and beta."""
        return self.kernel_size**2 * self.in_channels * self.out_channels + 2 * self.out_channels

    def flops(self, side: int) -> int:
        """Floating-point operations (2 per multiply-add) of the conv on a side×side map."""
        return 2 * self.kernel_size**2 * self.in_channels * self.out_channels * side * side


@dataclass(frozen=True)
class Term:
    """One summand of a vertex's input: ``source``, projected by a layer or truncated, or as is."""

    source: str
    projection: str | None = None
    truncate_to: int | None = None


@dataclass(frozen=True)
class VertexStep:
    """Compute vertex ``vertex`` into ``variable``: sum the terms, then apply the op."""

    vertex: int
    variable: str
    op: str
    channels: int
    terms: tuple[Term, ...]
    layer: str | None

    @property
    def is_maxpool(self) -> bool:
        return self.op == MAXPOOL3X3


@dataclass(frozen=True)
class CellPlan:
    """One cell body for a given (in_channels, out_channels) pair."""

    class_name: str
    in_channels: int
    out_channels: int
    vertex_channels: tuple[int, ...]
    layers: tuple[ConvLayer, ...]
    steps: tuple[VertexStep, ...]
    concat: tuple[str, ...]
    output_projection: str | None

    @property
    def parameters(self) -> int:
        return sum(layer.parameters for layer in self.layers)

    def flops(self, side: int) -> int:
        return sum(layer.flops(side) for layer in self.layers)


@dataclass(frozen=True)
class CellInstance:
    """A cell in the network: its attribute name, body, and whether a 2×2 max-pool precedes it."""

    attribute: str
    class_name: str
    stack: int
    downsample_before: bool
    side: int


@dataclass(frozen=True)
class NetworkPlan:
    """Everything the generated module needs, decided."""

    spec: ModelSpec
    built: ModelSpec
    canonical_labeling: bool
    config: NetworkConfig
    module_hash: str
    stem: ConvLayer
    cell_bodies: tuple[CellPlan, ...]
    cells: tuple[CellInstance, ...]
    classifier_in: int

    @property
    def trainable_parameters(self) -> int:
        """Trainable parameters, counted like the dataset's ``trainable_parameters``."""
        bodies = {body.class_name: body for body in self.cell_bodies}
        cells = sum(bodies[cell.class_name].parameters for cell in self.cells)
        classifier = (self.classifier_in + 1) * self.config.num_labels
        return self.stem.parameters + cells + classifier

    @property
    def flops(self) -> int:
        """FLOPs of one forward on a 32×32 image: 2 per multiply-add of convs and classifier."""
        bodies = {body.class_name: body for body in self.cell_bodies}
        cells = sum(bodies[cell.class_name].flops(cell.side) for cell in self.cells)
        classifier = 2 * self.classifier_in * self.config.num_labels
        return self.stem.flops(IMAGE_SIZE) + cells + classifier

    def vertex_channels(self) -> dict[str, tuple[int, ...]]:
        """Vertex channels of every cell body, keyed ``"C_in->C_out"``."""
        return {f"{b.in_channels}->{b.out_channels}": b.vertex_channels for b in self.cell_bodies}


def projection_name(vertex: int) -> str:
    """Layer projecting the cell input for ``vertex`` (the output vertex included)."""
    return f"proj{vertex}"


def op_name(vertex: int) -> str:
    """Layer computing the op of ``vertex``."""
    return f"op{vertex}"


def vertex_variable(vertex: int) -> str:
    return f"v{vertex}"


def cell_attribute(stack: int, index: int) -> str:
    return f"stack{stack}_cell{index}"


def cell_class_name(in_channels: int, out_channels: int) -> str:
    return f"Cell{in_channels}To{out_channels}"


def lower_cell(spec: ModelSpec, in_channels: int, out_channels: int) -> CellPlan:
    """Plan one cell body of the (validated) spec for an (in_channels, out_channels) pair."""
    matrix, ops = spec.pruned_matrix, spec.pruned_ops
    size = len(matrix)
    output = size - 1
    channels = compute_vertex_channels(matrix, in_channels, out_channels)
    layers: list[ConvLayer] = []
    steps: list[VertexStep] = []
    for t in range(1, output):
        terms = [
            Term(vertex_variable(s), truncate_to=channels[t] if channels[s] > channels[t] else None)
            for s in range(1, t)
            if matrix[s][t]
        ]
        if matrix[0][t]:
            layers.append(ConvLayer(projection_name(t), in_channels, channels[t], 1))
            terms.append(Term(CELL_INPUT, projection=projection_name(t)))
        layer = None
        if ops[t] != MAXPOOL3X3:
            layer = op_name(t)
            layers.append(ConvLayer(layer, channels[t], channels[t], KERNEL_SIZE[ops[t]]))
        steps.append(VertexStep(t, vertex_variable(t), ops[t], channels[t], tuple(terms), layer))
    output_projection = None
    if matrix[0][output]:
        output_projection = projection_name(output)
        layers.append(ConvLayer(output_projection, in_channels, out_channels, 1))
    concat = tuple(vertex_variable(t) for t in range(1, output) if matrix[t][output])
    return CellPlan(
        class_name=cell_class_name(in_channels, out_channels),
        in_channels=in_channels,
        out_channels=out_channels,
        vertex_channels=channels,
        layers=tuple(layers),
        steps=tuple(steps),
        concat=concat,
        output_projection=output_projection,
    )


def lower(spec: ModelSpec, config: NetworkConfig | None = None, canonical: bool = False) -> NetworkPlan:
    """Plan the whole network for ``spec`` (validated here) under ``config``.

    With ``canonical``, the cell is built in the labeling NAS-Bench-101 stored and trained.
    """
    config = config or NetworkConfig()
    spec.validate()
    built = spec.canonical() if canonical else spec
    stem = ConvLayer("stem", config.in_channels, config.stem_channels, 3)
    bodies: dict[tuple[int, int], CellPlan] = {}
    cells: list[CellInstance] = []
    in_channels = config.stem_channels
    side = IMAGE_SIZE
    for stack in range(config.num_stacks):
        out_channels = config.stack_channels(stack)
        for index in range(config.cells_per_stack):
            downsample = stack > 0 and index == 0
            if downsample:
                side = (side + 1) // 2  # 2x2 max-pool with TF 'same' padding
            pair = (in_channels, out_channels)
            if pair not in bodies:
                bodies[pair] = lower_cell(built, in_channels, out_channels)
            cells.append(
                CellInstance(cell_attribute(stack, index), bodies[pair].class_name, stack, downsample, side)
            )
            in_channels = out_channels
    return NetworkPlan(
        spec=spec,
        built=built,
        canonical_labeling=canonical,
        config=config,
        module_hash=spec.module_hash,
        stem=stem,
        cell_bodies=tuple(bodies.values()),
        cells=tuple(cells),
        classifier_in=in_channels,
    )
