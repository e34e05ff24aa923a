"""The NAS-Bench-101 channel split (upstream's ``model_builder.compute_vertex_channels``)."""

from __future__ import annotations

from collections.abc import Sequence

from nbcompile.errors import ConfigError


def compute_vertex_channels(matrix: Sequence[Sequence[int]], in_channels: int, out_channels: int) -> tuple[int, ...]:
    """Channels of every vertex of a pruned cell mapping ``in_channels`` to ``out_channels``.

    The output's channels are split evenly among the interior vertices that feed the output,
    the remainder going +1 to the lowest-indexed ones; every other interior vertex takes the
    maximum of its interior successors. Raises ConfigError when a vertex would get no channel.
    """
    size = len(matrix)
    channels = [0] * size
    channels[0] = in_channels
    channels[-1] = out_channels
    if size == 2:
        return tuple(channels)
    feeders = [v for v in range(1, size - 1) if matrix[v][size - 1]]
    base, extra = divmod(out_channels, len(feeders))
    for v in feeders:
        channels[v] = base + (1 if extra > 0 else 0)
        extra -= 1 if extra > 0 else 0
    for v in range(size - 3, 0, -1):
        if not matrix[v][size - 1]:
            channels[v] = max([channels[v]] + [channels[d] for d in range(v + 1, size - 1) if matrix[v][d]])
    if min(channels[1:-1]) <= 0:
        raise ConfigError(
            f"{out_channels} output channels cannot be split among the {len(feeders)} vertices "
            "that feed the output: every vertex needs at least one channel"
        )
    return tuple(channels)
