"""The NAS-Bench-101 operation vocabulary."""

from __future__ import annotations

INPUT = "input"
OUTPUT = "output"
CONV3X3 = "conv3x3-bn-relu"
CONV1X1 = "conv1x1-bn-relu"
MAXPOOL3X3 = "maxpool3x3"

#: Interior ops in the benchmark's order; the index is the op's hash label.
AVAILABLE_OPS: tuple[str, ...] = (CONV3X3, CONV1X1, MAXPOOL3X3)

#: Accepted spellings (full and short) mapped to the full name.
OP_ALIASES: dict[str, str] = {
    INPUT: INPUT,
    OUTPUT: OUTPUT,
    CONV3X3: CONV3X3,
    CONV1X1: CONV1X1,
    MAXPOOL3X3: MAXPOOL3X3,
    "conv3x3": CONV3X3,
    "conv1x1": CONV1X1,
}

#: Kernel size of each convolutional op.
KERNEL_SIZE: dict[str, int] = {CONV3X3: 3, CONV1X1: 1}

#: Hash label of each op (reference §1.3): -1 input, -2 output, index in AVAILABLE_OPS otherwise.
HASH_LABEL: dict[str, int] = {INPUT: -1, OUTPUT: -2, **{op: i for i, op in enumerate(AVAILABLE_OPS)}}

#: Short names, used in generated code and compact listings.
SHORT_NAME: dict[str, str] = {
    INPUT: INPUT,
    OUTPUT: OUTPUT,
    CONV3X3: "conv3x3",
    CONV1X1: "conv1x1",
    MAXPOOL3X3: "maxpool3x3",
}
