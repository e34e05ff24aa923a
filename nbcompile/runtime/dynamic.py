"""A graph-walking NAS-Bench-101 network: the benchmark baseline and the equivalence oracle.

It does what the existing ports do: keep the adjacency matrix and walk it in Python on every
forward. Its state_dict keys are those of the generated ``Network``, so weights load both ways.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nbcompile.compiler.channels import compute_vertex_channels
from nbcompile.compiler.config import NetworkConfig
from nbcompile.compiler.naming import cell_attribute, op_name, projection_name
from nbcompile.runtime.layers import ConvBnRelu, dense_classifier
from nbcompile.space.ops import KERNEL_SIZE, MAXPOOL3X3
from nbcompile.space.spec import as_model_spec


def truncate(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Keep the first ``channels`` channels, as upstream's ``truncate`` (at most one dropped)."""
    available = x.shape[1]
    if available < channels:
        raise ValueError(f"cannot truncate {available} channels to {channels}")
    if available == channels:
        return x
    assert available - channels == 1, "truncation drops at most one channel"
    return x[:, :channels]


class DynamicCell(nn.Module):
    """One cell that walks its adjacency matrix on every forward."""

    def __init__(self, matrix: np.ndarray, ops: list[str], in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.matrix = matrix
        self.ops = ops
        self.vertex_channels = compute_vertex_channels(matrix.tolist(), in_channels, out_channels)
        size = len(matrix)
        for t in range(1, size - 1):
            if matrix[0, t]:
                self.add_module(projection_name(t), ConvBnRelu(in_channels, self.vertex_channels[t], 1))
            if ops[t] != MAXPOOL3X3:
                channels = self.vertex_channels[t]
                self.add_module(op_name(t), ConvBnRelu(channels, channels, KERNEL_SIZE[ops[t]]))
        if matrix[0, size - 1]:
            self.add_module(projection_name(size - 1), ConvBnRelu(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = len(self.matrix)
        output = size - 1
        values = [x]
        concat = []
        for t in range(1, output):
            inputs = [truncate(values[s], self.vertex_channels[t]) for s in range(1, t) if self.matrix[s, t]]
            if self.matrix[0, t]:
                inputs.append(self.get_submodule(projection_name(t))(x))
            total = inputs[0]
            for extra in inputs[1:]:
                total = total + extra
            if self.ops[t] == MAXPOOL3X3:
                value = F.max_pool2d(total, kernel_size=3, stride=1, padding=1)
            else:
                value = self.get_submodule(op_name(t))(total)
            values.append(value)
            if self.matrix[t, output]:
                concat.append(value)
        if not concat:
            return self.get_submodule(projection_name(output))(x)
        out = concat[0] if len(concat) == 1 else torch.cat(concat, dim=1)
        if self.matrix[0, output]:
            out = out + self.get_submodule(projection_name(output))(x)
        return out


class DynamicNetwork(nn.Module):
    """The NAS-Bench-101 network of ``spec``, built from the matrix at run time.

    ``spec`` is a ModelSpec, a ``{"matrix", "ops"}`` mapping or an object with matrix and ops;
    ``config`` overrides NetworkConfig fields. The cell is built in the labeling given.
    """

    def __init__(self, spec: Any, **config: Any) -> None:
        super().__init__()
        spec = as_model_spec(spec).validate()
        self.config = NetworkConfig.from_kwargs(**config)
        matrix = np.array(spec.pruned_matrix, dtype=np.int64)
        ops = list(spec.pruned_ops)
        self.stem = ConvBnRelu(self.config.in_channels, self.config.stem_channels, 3)
        self.downsample_before: list[bool] = []
        in_channels = self.config.stem_channels
        for stack in range(self.config.num_stacks):
            out_channels = self.config.stack_channels(stack)
            for index in range(self.config.cells_per_stack):
                self.add_module(cell_attribute(stack, index), DynamicCell(matrix, ops, in_channels, out_channels))
                self.downsample_before.append(stack > 0 and index == 0)
                in_channels = out_channels
        self.classifier = dense_classifier(in_channels, self.config.num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        cells = [module for name, module in self.named_children() if name.startswith("stack")]
        for cell, downsample in zip(cells, self.downsample_before):
            if downsample:
                # ceil_mode matches TF's 'same' padding on odd sizes
                x = F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)
            x = cell(x)
        x = x.mean(dim=(2, 3))
        return self.classifier(x)
