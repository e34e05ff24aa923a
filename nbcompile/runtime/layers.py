"""PyTorch building blocks shared by the dynamic reference network."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nbcompile.compiler.plan import BN_EPS, BN_MOMENTUM, TRUNCATED_NORMAL_STD
from nbcompile.runtime.sampling import trunc_normal_


def tf_truncated_normal_(weight: torch.Tensor, fan_in: int) -> torch.Tensor:
    """TF ``variance_scaling()`` defaults: truncated normal (at 2σ), fan-in, scale 1."""
    std = (1.0 / fan_in) ** 0.5 / TRUNCATED_NORMAL_STD
    return trunc_normal_(weight, std=std, a=-2.0 * std, b=2.0 * std)  # torch's numbers, faster


class ConvBnRelu(nn.Module):
    """Conv (no bias), BatchNorm, ReLU, with the TensorFlow conventions NAS-Bench-101 used."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        tf_truncated_normal_(self.conv.weight, in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def dense_classifier(in_features: int, num_labels: int) -> nn.Linear:
    """The final dense layer: Glorot-uniform kernel, zero bias (the tf.layers defaults)."""
    layer = nn.Linear(in_features, num_labels)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer
