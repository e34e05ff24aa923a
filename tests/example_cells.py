"""The cells the tests share, with the values known for them, and where the repository keeps its
example cells and golden files.

The Inception-like cell and its numbers are the NAS-Bench-101 paper's and upstream's notebook's
(``NASBench.ipynb``, whose first query is this cell): its module hash, the canonical form the
dataset stores, 2,694,282 trainable parameters. The other cells are small ones that are easy to
reason about, inside and outside the space.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
#: The golden files: every example compiled with the default config.
GENERATED = REPO / "generated"

# --- the Inception-like cell ----------------------------------------------------------------------
#: As upstream's notebook writes it (7 vertices, 8 edges, one max-pool).
INCEPTION: dict[str, Any] = {
    "matrix": [
        [0, 1, 1, 1, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    "ops": [
        "input",
        "conv1x1-bn-relu",
        "conv3x3-bn-relu",
        "conv3x3-bn-relu",
        "conv3x3-bn-relu",
        "maxpool3x3",
        "output",
    ],
}
#: ``examples/inception.json``: the same cell (test_golden_files.py checks that it is).
INCEPTION_JSON = EXAMPLES / "inception.json"
#: Its key in the dataset.
INCEPTION_HASH = "28cfc7874f6d200472e1a9dcd8650aa0"
#: The name its default-config build gets: not canonical as given, so the name has a config suffix.
INCEPTION_MODULE_NAME = "nb101_28cfc7874f6d_2d1790b6"
#: The form the dataset stores it in, as the notebook's query returns it: the canonical labeling.
INCEPTION_STORED_MATRIX = (
    (0, 1, 1, 1, 1, 0, 0),
    (0, 0, 0, 0, 0, 0, 1),
    (0, 0, 0, 0, 0, 0, 1),
    (0, 0, 0, 0, 0, 0, 1),
    (0, 0, 0, 0, 0, 1, 0),
    (0, 0, 0, 0, 0, 0, 1),
    (0, 0, 0, 0, 0, 0, 0),
)
INCEPTION_STORED_OPS = (
    "input",
    "conv3x3-bn-relu",
    "conv1x1-bn-relu",
    "maxpool3x3",
    "conv3x3-bn-relu",
    "conv3x3-bn-relu",
    "output",
)
#: The stored matrix as a record's adjacency field holds it: row by row, one digit an entry.
INCEPTION_STORED_ADJACENCY = "".join(str(entry) for row in INCEPTION_STORED_MATRIX for entry in row)

#: Upstream's notebook's names of the ops, as a user's code has them.
INPUT, OUTPUT = "input", "output"
CONV3X3, CONV1X1, MAXPOOL3X3 = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"

#: The keys of upstream's ``NASBench.query()`` result, in its order (upstream's ``api.py``).
QUERY_KEYS = (
    "module_adjacency",
    "module_operations",
    "trainable_parameters",
    "training_time",
    "train_accuracy",
    "validation_accuracy",
    "test_accuracy",
)

# --- the other examples -----------------------------------------------------------------------------
#: The 7-vertex 9-edge cell of five 3x3 convolutions (the benchmarks' large cell).
SEVEN_VERTEX_NINE_EDGE_JSON = EXAMPLES / "seven_vertex_nine_edge.json"
#: The smallest cell: the input projected straight to the output (``examples/two_vertex.json``).
TWO_VERTEX: dict[str, Any] = {"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"]}
TWO_VERTEX_JSON = EXAMPLES / "two_vertex.json"

#: A cell whose vertex 1 -> vertex 2 edge is truncated in some stacks only: at the default config
#: its vertex channels are [128, 43, 43, 42, 128] (128->128, no truncation) and
#: [128, 86, 85, 85, 256] (128->256, vertex 1 truncated from 86 to 85 channels).
#: ``examples/per_stack_truncation.json`` holds it with the ops' full names.
PER_STACK_TRUNCATION: dict[str, Any] = {
    "matrix": [
        [0, 1, 1, 1, 0],
        [0, 0, 1, 0, 1],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
    ],
    "ops": ["input", "conv1x1", "conv3x3", "conv3x3", "output"],
}
PER_STACK_JSON = EXAMPLES / "per_stack_truncation.json"
PER_STACK_HASH = "78e264120b42829179e711a1bee1fd97"

# --- cells for error messages: well-formed but outside the space, or malformed -----------------------
#: per_stack_truncation.json with its interior vertices renumbered: same hash, different network.
RELABELED: dict[str, Any] = {
    "matrix": [[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
    "ops": ["input", "conv3x3", "conv1x1", "conv3x3", "output"],
}
#: Three interior vertices that all feed the output.
THREE_FEEDERS: dict[str, Any] = {
    "matrix": [[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
    "ops": ["input", "conv3x3", "conv3x3", "conv3x3", "output"],
}
#: An edge from vertex 4 back to vertex 1.
BELOW_DIAGONAL: dict[str, Any] = {
    "matrix": [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 1, 0, 0, 0]],
    "ops": ["input", "conv3x3", "conv3x3", "conv3x3", "output"],
}
#: Seven vertices, all on an input->output path, with 10 edges.
TEN_EDGES: dict[str, Any] = {
    "matrix": [
        [0, 1, 1, 1, 0, 0, 0],
        [0, 0, 1, 1, 0, 0, 0],
        [0, 0, 0, 1, 1, 0, 0],
        [0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    "ops": ["input", "conv3x3", "conv3x3", "conv3x3", "conv3x3", "conv3x3", "output"],
}
DISCONNECTED: dict[str, Any] = {"matrix": [[0, 1, 0], [0, 0, 0], [0, 0, 0]], "ops": ["input", "conv3x3", "output"]}
INPUT_NOT_FIRST: dict[str, Any] = {"matrix": [[0, 1, 0], [0, 0, 1], [0, 0, 0]], "ops": ["conv3x3", "input", "output"]}
OUTPUT_IN_MIDDLE: dict[str, Any] = {"matrix": [[0, 1, 1], [0, 0, 1], [0, 0, 0]], "ops": ["input", "output", "output"]}


def chain(size: int) -> dict[str, Any]:
    """A straight input -> conv3x3 -> ... -> output cell of ``size`` vertices."""
    matrix = [[int(c == r + 1) for c in range(size)] for r in range(size)]
    return {"matrix": matrix, "ops": ["input"] + ["conv3x3"] * (size - 2) + ["output"]}


#: The matrix of a 3-vertex chain: input -> vertex 1 -> output.
CHAIN = chain(3)["matrix"]
