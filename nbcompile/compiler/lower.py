"""Lowering: a validated cell spec and a config → the :class:`~nbcompile.compiler.plan.NetworkPlan`."""

from __future__ import annotations

from nbcompile.compiler.channels import compute_vertex_channels
from nbcompile.compiler.config import NetworkConfig
from nbcompile.compiler.naming import (
    CELL_INPUT,
    cell_attribute,
    cell_class_name,
    op_name,
    projection_name,
    vertex_variable,
)
from nbcompile.compiler.plan import IMAGE_SIZE, CellInstance, CellPlan, ConvLayer, NetworkPlan, Term, VertexStep
from nbcompile.space.ops import KERNEL_SIZE, MAXPOOL3X3
from nbcompile.space.spec import ModelSpec


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
        steps.append(VertexStep(vertex_variable(t), ops[t], tuple(terms), layer))
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
            cells.append(CellInstance(cell_attribute(stack, index), bodies[pair].class_name, downsample, side))
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
