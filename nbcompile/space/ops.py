"""The NAS-Bench-101 search space's vocabulary and limits, and its one padded-array cell encoding."""

from __future__ import annotations

INPUT = "input"
OUTPUT = "output"
CONV3X3 = "conv3x3-bn-relu"
CONV1X1 = "conv1x1-bn-relu"
MAXPOOL3X3 = "maxpool3x3"

#: Search-space limits, counted after pruning (upstream's ``nasbench/api.py``).
MAX_VERTICES = 7
MAX_EDGES = 9

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

#: Hash label of each op (upstream's ``api.py``): -1 input, -2 output, index in AVAILABLE_OPS otherwise.
HASH_LABEL: dict[str, int] = {INPUT: -1, OUTPUT: -2, **{op: i for i, op in enumerate(AVAILABLE_OPS)}}

#: The padded-array encoding of cells, used by the dataset tables and cache and by .npz cell
#: files: ``ops`` arrays hold these codes, ``PAD_CODE`` past the last vertex; matrices are
#: ``MAX_VERTICES`` square, zero padded.
OP_CODES: tuple[str, ...] = (INPUT, CONV3X3, CONV1X1, MAXPOOL3X3, OUTPUT)
OP_CODE: dict[str, int] = {name: code for code, name in enumerate(OP_CODES)}
PAD_CODE = -1

#: The network skeleton NAS-Bench-101 trained around every cell (``lib/config.py``, ``lib/model_builder.py``).
STEM_CHANNELS = 128
NUM_STACKS = 3
CELLS_PER_STACK = 3
NUM_LABELS = 10
#: Epochs of the longest training NAS-Bench-101 ran (the budget of nasbench_only108.tfrecord).
TRAIN_EPOCHS = 108
#: Every epoch budget NAS-Bench-101 trained each cell for; ``nasbench_full.tfrecord`` holds all four.
EPOCH_BUDGETS = (4, 12, 36, TRAIN_EPOCHS)
