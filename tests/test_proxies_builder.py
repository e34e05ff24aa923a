"""Networks built in memory: the same as the generated file's, shared between labelings of a cell."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nbcompile.compiler.config import NetworkConfig
from nbcompile.compiler.driver import compile_to_file
from nbcompile.proxies.names import PROXY_NAMES
from nbcompile.proxies.runner import ProxyScorer, random_batch
from nbcompile.runtime.device import seeded
from nbcompile.runtime.inmemory import NetworkBuilder, network_class_from_source
from nbcompile.runtime.loader import load_model
from nbcompile.space.graph import interior_orders, positions, relabel
from nbcompile.space.spec import ModelSpec

#: Two stacks, so that the network has two cell classes (C→C and C→2C).
SMALL = NetworkConfig(stem_channels=8, num_stacks=2, cells_per_stack=1)
TINY = NetworkConfig(stem_channels=8, num_stacks=1, cells_per_stack=1)
#: A cell given in a labeling that is not the dataset's (its canonical labeling differs).
CELL = ModelSpec(
    [
        [0, 1, 1, 0, 0, 0],
        [0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 1, 1],
        [0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0],
    ],
    ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "output"],
)


def labelings(spec: ModelSpec) -> list[ModelSpec]:
    """Every vertex order of ``spec`` that keeps its matrix upper triangular."""
    matrix, ops = spec.pruned_matrix, spec.pruned_ops
    found = []
    for order in interior_orders(len(matrix)):
        position = positions(order)
        if all(position[a] < position[b] for a in range(len(matrix)) for b in range(len(matrix)) if matrix[a][b]):
            found.append(ModelSpec(relabel(matrix, order), [ops[old] for old in order]))
    return found


def test_the_cell_has_several_labelings_and_is_not_canonical() -> None:
    assert not CELL.is_canonical()
    assert len({(s.pruned_matrix, s.pruned_ops) for s in labelings(CELL)}) >= 3


def test_the_in_memory_network_is_the_generated_files(tmp_path: Path) -> None:
    path = compile_to_file(CELL, tmp_path, canonical=True, **SMALL.overrides())
    with seeded(5):
        from_file = load_model(path)
    in_memory = NetworkBuilder(SMALL).build(CELL, seed=5)
    assert type(in_memory).__module__ != type(from_file).__module__
    expected, got = from_file.state_dict(), in_memory.state_dict()
    assert list(expected) == list(got)
    assert all(torch.equal(expected[key], got[key]) for key in expected)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(from_file.eval()(images), in_memory.eval()(images))


def test_every_labeling_shares_one_class_and_one_set_of_weights() -> None:
    builder = NetworkBuilder(SMALL)
    networks = [builder.build(spec, seed=1) for spec in labelings(CELL)]
    assert builder.executed == 1
    assert len({type(network) for network in networks}) == 1
    first = networks[0].state_dict()
    assert all(all(torch.equal(first[k], n.state_dict()[k]) for k in first) for n in networks[1:])


def test_every_labeling_of_a_cell_gives_the_same_scores() -> None:
    scorer = ProxyScorer(PROXY_NAMES, random_batch(8, 0, TINY), TINY, seed=2)
    cells = labelings(CELL)[:3]
    results = [scorer.score(spec) for spec in cells]
    assert all(result == results[0] for result in results[1:])
    assert scorer.builder.executed == 1


def test_a_seed_gives_the_same_weights_and_leaves_torchs_generator_alone() -> None:
    builder = NetworkBuilder(TINY)
    state = torch.random.get_rng_state()
    first, again, other = (builder.build(CELL, seed=s).state_dict() for s in (3, 3, 4))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["stem.conv.weight"], other["stem.conv.weight"])


def test_the_class_cache_keeps_the_most_recently_used_cells() -> None:
    other = ModelSpec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
    builder = NetworkBuilder(TINY, cache_size=1)
    builder.network_class(CELL)
    builder.network_class(CELL)
    assert builder.executed == 1
    builder.network_class(other)
    builder.network_class(CELL)
    assert builder.executed == 3
    with pytest.raises(ValueError, match="cache_size"):
        NetworkBuilder(TINY, cache_size=0)


def test_a_source_without_a_network_is_refused() -> None:
    with pytest.raises(ImportError, match="no Network class"):
        network_class_from_source("x = 1\n", "_nbcompile_test_source")


def test_building_in_memory_needs_no_black() -> None:
    """A machine that only scores cells (a GPU box) need not have the formatter installed."""
    import json
    import subprocess
    import sys

    code = (
        "import sys, json; from nbcompile.runtime.inmemory import NetworkBuilder; "
        "from nbcompile.compiler.config import NetworkConfig; "
        f"NetworkBuilder(NetworkConfig(stem_channels=8, num_stacks=1, cells_per_stack=1)).build({CELL.to_dict()!r}); "
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert "black" not in loaded and "torch" in loaded
