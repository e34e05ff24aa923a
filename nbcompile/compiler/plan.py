"""The plan: the compiler's IR, plain frozen dataclasses describing the whole network.

The plan decides everything the generated code contains: layer names and shapes, the value each
vertex reads (projected, truncated or as is), the sums, the concatenation order and the
input→output projection. :mod:`~nbcompile.compiler.lower` builds it; rendering only prints it.
"""

from __future__ import annotations

from dataclasses import dataclass

from nbcompile.compiler.config import NetworkConfig
from nbcompile.space.ops import MAXPOOL3X3
from nbcompile.space.spec import ModelSpec

#: Image side the FLOP count is given for (CIFAR-10).
IMAGE_SIZE = 32

# NAS-Bench-101's TensorFlow layer conventions, in PyTorch terms; the generated code and
# nbcompile.runtime.layers both take them from here.
#: tf.layers.batch_normalization(momentum=0.997) is PyTorch momentum 1 - 0.997.
BN_MOMENTUM = 0.003
BN_EPS = 1e-5
#: Standard deviation of a unit normal truncated at ±2, which TF's variance_scaling corrects for.
TRUNCATED_NORMAL_STD = 0.8796256610342398


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
    """Compute a vertex into ``variable``: sum the terms, then apply the op (``layer``, or max-pool)."""

    variable: str
    op: str
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
