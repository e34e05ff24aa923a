"""Images kept on the training device as uint8, augmented there (no DataLoader, no workers).

Training batches follow upstream's pipeline (``lib/cifar.py``): the 40k training images shuffled
with a whole-set buffer and repeated, batches of 256 cut across epoch boundaries (so no image is
dropped); each image zero-padded to 40×40, randomly cropped to 32×32, randomly flipped, then
normalised per channel, so that padded pixels end at −mean/std.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nbcompile.train.cifar10 import ImageSet

#: Upstream's per-channel normalisation, in 0-255 pixel units.
MEAN = (125.31, 122.95, 113.87)
STD = (62.99, 62.09, 66.70)
PAD = 4
SIZE = 32


@dataclass
class DeviceImages:
    """One image set on ``device``: uint8 ``[N, 3, 32, 32]`` images and int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def of(cls, images: ImageSet, device: torch.device | str) -> DeviceImages:
        return cls(torch.from_numpy(images.images).to(device), torch.from_numpy(images.labels).to(device))

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 or float pixels in 0-255 → ``(x − mean) / std`` per channel, float32."""
    mean = torch.tensor(MEAN, device=images.device).reshape(1, 3, 1, 1)
    std = torch.tensor(STD, device=images.device).reshape(1, 3, 1, 1)
    return (images.float() - mean) / std


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Pad to 40×40 with zeros, crop a random 32×32 window and flip half the images at random,
    all on ``images``' device with ``generator``; returns normalised float32 images."""
    n = images.shape[0]
    device = images.device
    padded = torch.nn.functional.pad(images, (PAD, PAD, PAD, PAD))
    offsets = torch.randint(0, 2 * PAD + 1, (2, n, 1), device=device, generator=generator)
    flips = torch.rand((n, 1), device=device, generator=generator) < 0.5
    span = torch.arange(SIZE, device=device)
    rows = offsets[0] + span  # [n, 32]
    cols = offsets[1] + torch.where(flips, SIZE - 1 - span, span)
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(3, device=device)[None, :, None, None]
    cropped = padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]
    return normalize(cropped)


class BatchStream:
    """Endless training batches: whole-set shuffles, repeated, cut into ``batch_size`` batches
    that may span two shuffles, drawn with ``generator`` on the images' device."""

    def __init__(self, data: DeviceImages, batch_size: int, generator: torch.Generator) -> None:
        if batch_size > len(data):
            raise ValueError(f"batch size {batch_size} exceeds the {len(data)} training images")
        self.data, self.batch_size, self.generator = data, batch_size, generator
        self._order = torch.empty(0, dtype=torch.int64, device=data.labels.device)
        self._position = 0

    def indices(self) -> torch.Tensor:
        if self._position + self.batch_size > self._order.shape[0]:
            shuffle = torch.randperm(len(self.data), device=self._order.device, generator=self.generator)
            self._order = torch.cat([self._order[self._position :], shuffle])
            self._position = 0
        chosen = self._order[self._position : self._position + self.batch_size]
        self._position += self.batch_size
        return chosen

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """An augmented, normalised image batch and its labels."""
        chosen = self.indices()
        return augment(self.data.images[chosen], self.generator), self.data.labels[chosen]


def eval_batches(data: DeviceImages, batch_size: int):
    """``len // batch_size`` batches in order, normalised, without augmentation (upstream's
    ``10000 // 256 = 39`` batches: 9,984 images)."""
    for start in range(0, (len(data) // batch_size) * batch_size, batch_size):
        yield normalize(data.images[start : start + batch_size]), data.labels[start : start + batch_size]
