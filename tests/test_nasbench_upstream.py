"""nbcompile.nasbench as a drop-in for upstream's ``nasbench.api``: the import line, the notebook's
code, ``ModelSpec`` (lenient like upstream's for the API, strict for the compiler), foreign spec
objects, epochs given as floats, and statistics that cannot be changed through the views.

Upstream's behaviour is that of its ``nasbench/api.py`` and ``nasbench/lib/model_spec.py``; where a
foreign spec object is needed, ``UpstreamModelSpec`` below is a small fake of upstream's class
(TensorFlow's nasbench is not installed).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from example_cells import CHAIN, CONV1X1, CONV3X3, INCEPTION, INPUT, MAXPOOL3X3, OUTPUT, QUERY_KEYS
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import cell_matrices

from nbcompile.errors import SpecError

# The notebook's first cell (upstream's NASBench.ipynb) is the Inception-like one.
NOTEBOOK_MATRIX, NOTEBOOK_OPS = INCEPTION["matrix"], INCEPTION["ops"]


class UpstreamModelSpec:
    """A fake of upstream's ``ModelSpec`` (its ``lib/model_spec.py``): it checks only the shape and the
    upper triangle, keeps any op name, and prunes to the vertices on an input→output path."""

    def __init__(self, matrix, ops, data_format="channels_last"):
        matrix = np.array(matrix)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError("matrix must be square")
        if matrix.shape[0] != len(ops):
            raise ValueError("length of ops must match matrix dimensions")
        if np.any(np.tril(matrix)):
            raise ValueError("matrix must be upper triangular")
        self.original_matrix, self.original_ops = matrix.copy(), list(ops)
        size = len(ops)
        forward, backward = {0}, {size - 1}
        for u in range(size):
            if u in forward:
                forward |= {v for v in range(u + 1, size) if matrix[u, v]}
        for u in reversed(range(size)):
            if u in backward:
                backward |= {v for v in range(u) if matrix[v, u]}
        kept = sorted(forward & backward)
        self.valid_spec = len(kept) >= 2
        self.matrix = matrix[np.ix_(kept, kept)] if self.valid_spec else None
        self.ops = [ops[v] for v in kept] if self.valid_spec else None
        self.data_format = data_format


# --- the import surface ---------------------------------------------------------------------------


def test_upstream_import_line_works_as_upstreams_module() -> None:
    from nbcompile import errors
    from nbcompile.nasbench import ModelSpec, NASBench, OutOfDomainError, api

    assert api.NASBench is NASBench and api.ModelSpec is ModelSpec
    assert api.OutOfDomainError is OutOfDomainError is errors.OutOfDomainError
    import nbcompile.nasbench as package

    assert {"api", "ModelSpec", "NASBench", "OutOfDomainError"} <= set(package.__all__)
    assert {"ModelSpec", "NASBench", "OutOfDomainError"} <= set(api.__all__)


def test_notebook_code_runs_with_only_the_import_line_changed(small_only108, tmp_path, capsys) -> None:
    """The notebook's first cells, as written for upstream, with `from nasbench import api` changed."""
    notebook = f"""
from nbcompile.nasbench import api
nasbench = api.NASBench({str(small_only108)!r})
cell = api.ModelSpec(matrix={NOTEBOOK_MATRIX!r}, ops={NOTEBOOK_OPS!r})
data = nasbench.query(cell)
for k, v in data.items():
    print('%s: %s' % (k, str(v)))
print(nasbench.is_valid(cell), nasbench.get_budget_counters()[1])
fixed_stats, computed_stats = nasbench.get_metrics_from_spec(cell)
for unique_hash in nasbench.hash_iterator():
    fixed_metrics, computed_metrics = nasbench.get_metrics_from_hash(unique_hash)
    break
nasbench.reset_budget_counters()
"""
    cache = tmp_path / "cache"
    env = {"NBCOMPILE_CACHE_DIR": str(cache)}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        exec(compile(notebook, "notebook", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert "trainable_parameters: 2694282" in out and out[-1] == "True 108"
    assert tuple(line.split(":")[0] for line in out if line[:1].isalpha())[:7] == QUERY_KEYS


# --- ModelSpec ------------------------------------------------------------------------------------


def test_model_spec_takes_and_keeps_data_format() -> None:
    from nbcompile.nasbench import api
    from nbcompile.space.spec import ModelSpec as StrictSpec

    assert api.ModelSpec(NOTEBOOK_MATRIX, NOTEBOOK_OPS).data_format == "channels_last"  # upstream's default
    assert api.ModelSpec(NOTEBOOK_MATRIX, NOTEBOOK_OPS, data_format="channels_first").data_format == "channels_first"
    assert api.ModelSpec(NOTEBOOK_MATRIX, NOTEBOOK_OPS, "channels_first").data_format == "channels_first"
    assert StrictSpec(NOTEBOOK_MATRIX, NOTEBOOK_OPS, data_format="channels_first").data_format == "channels_first"
    # the format does not change the cell: same hash either way
    assert (
        api.ModelSpec(NOTEBOOK_MATRIX, NOTEBOOK_OPS, "channels_first").module_hash
        == StrictSpec(NOTEBOOK_MATRIX, NOTEBOOK_OPS).module_hash
    )


def test_op_outside_the_space_builds_for_the_api_and_is_strict_for_the_compiler(nasbench) -> None:
    from nbcompile.nasbench import api
    from nbcompile.space.spec import ModelSpec as StrictSpec

    odd = api.ModelSpec(CHAIN, [INPUT, "conv5x5", OUTPUT])  # upstream: builds
    assert odd.ops == [INPUT, "conv5x5", OUTPUT] and odd.is_valid() is False
    assert nasbench.is_valid(odd) is False
    with pytest.raises(api.OutOfDomainError, match=r"ops\[1\] = 'conv5x5' is not a NAS-Bench-101 op"):
        nasbench.query(odd)
    with pytest.raises(ValueError):  # upstream: ValueError from list.index in hash_spec
        odd.hash_spec()
    assert nasbench.get_budget_counters() == (0.0, 0)
    # upstream drops a pruned vertex's op unchecked: a cell whose odd op is cut off is valid
    cut = api.ModelSpec([[0, 1, 1], [0, 0, 0], [0, 0, 0]], [INPUT, "conv5x5", OUTPUT])
    assert cut.is_valid() and cut.ops == [INPUT, OUTPUT]
    # the compiler's spec keeps its strict error, and the CLI reports it on one line
    with pytest.raises(SpecError, match="conv5x5"):
        StrictSpec(CHAIN, [INPUT, "conv5x5", OUTPUT])


def test_foreign_upstream_specs_follow_upstreams_rules(nasbench) -> None:
    from nbcompile.nasbench import api

    odd = UpstreamModelSpec(CHAIN, [INPUT, "conv5x5", OUTPUT])
    assert nasbench.is_valid(odd) is False
    with pytest.raises(api.OutOfDomainError):
        nasbench.query(odd)
    inception = UpstreamModelSpec(NOTEBOOK_MATRIX, NOTEBOOK_OPS, data_format="channels_first")
    assert nasbench.is_valid(inception) and nasbench.query(inception)["trainable_parameters"] == 2_694_282
    assert nasbench.is_valid({"matrix": CHAIN, "ops": [INPUT, "conv5x5", OUTPUT]}) is False


def test_query_accepts_an_integral_float_epoch_count(small_only108, tmp_path) -> None:
    from nbcompile.nasbench import api

    by_int = api.NASBench(str(small_only108), seed=9, cache_dir=tmp_path, progress=False)
    by_float = api.NASBench(str(small_only108), seed=9, cache_dir=tmp_path, progress=False)
    cell = api.ModelSpec(NOTEBOOK_MATRIX, NOTEBOOK_OPS)
    for epochs in (108.0, np.float64(108.0), np.int64(108)):
        assert _comparable(by_float.query(cell, epochs=epochs)) == _comparable(by_int.query(cell, epochs=108))
    assert by_float.query(cell, epochs=108.0, stop_halfway=True)["training_time"] > 0
    spent = by_float.get_budget_counters()[1]
    assert spent == 3 * 108 + 54 and type(spent) is int
    for bad in (108.5, True, "108", 12.0):
        with pytest.raises(api.OutOfDomainError, match="invalid number of epochs"):
            by_float.query(cell, epochs=bad)
    assert by_float.query_many([cell], epochs=108.0)["trainable_parameters"].tolist() == [2_694_282]


def _comparable(result: dict) -> dict:
    """Query results compare by value once the adjacency array is a list."""
    return {**result, "module_adjacency": result["module_adjacency"].tolist()}


def test_comparable_results_differ_when_values_do(nasbench) -> None:
    """(The helper above must not make unequal results compare equal.)"""
    first = nasbench.query(INCEPTION, reduce="mean")
    other = {**first, "test_accuracy": first["test_accuracy"] + 1}
    assert _comparable(first) != _comparable(other)


# --- read-only statistics -------------------------------------------------------------------------


def test_statistics_views_refuse_every_write(nasbench) -> None:
    module_hash = next(iter(nasbench.hash_iterator()))
    fixed, computed = nasbench.fixed_statistics[module_hash], nasbench.computed_statistics[module_hash]
    writes = [
        lambda: nasbench.fixed_statistics.__setitem__(module_hash, {}),
        lambda: nasbench.computed_statistics.__delitem__(module_hash),
        lambda: fixed.__setitem__("trainable_parameters", 1),
        lambda: fixed.update(trainable_parameters=1),
        lambda: fixed.pop("trainable_parameters"),
        lambda: fixed["module_operations"].append("conv5x5"),
        lambda: fixed["module_operations"].__setitem__(0, "output"),
        lambda: computed.__setitem__(4, []),
        lambda: computed[108].append({}),
        lambda: computed[108][0].__setitem__("final_test_accuracy", 1.0),
        lambda: computed[108][0].setdefault("extra", 1.0),
    ]
    for write in writes:
        with pytest.raises(TypeError, match="read-only view of the dataset"):
            write()
    with pytest.raises(ValueError, match="read-only"):
        fixed["module_adjacency"][0, 1] = 0
    # nothing changed, and the values are what the copies say
    fresh_fixed, fresh_computed = nasbench.get_metrics_from_hash(module_hash)
    assert _comparable(nasbench.fixed_statistics[module_hash]) == _comparable(fresh_fixed)
    assert nasbench.computed_statistics[module_hash] == fresh_computed
    assert isinstance(fixed, dict) and isinstance(computed[108], list)
    assert json.loads(json.dumps(computed)) == json.loads(json.dumps(fresh_computed))


def test_copies_of_the_views_are_plain_and_writable(nasbench) -> None:
    module_hash = next(iter(nasbench.hash_iterator()))
    computed = copy.deepcopy(nasbench.computed_statistics[module_hash])
    computed[108][0]["final_test_accuracy"] = -1.0
    computed[108].append({})
    assert type(computed) is dict and type(computed[108]) is list
    fixed = copy.deepcopy(nasbench.fixed_statistics[module_hash])
    fixed["module_adjacency"][0, 0] = 5
    shallow = copy.copy(nasbench.fixed_statistics[module_hash])
    shallow["trainable_parameters"] = 0
    assert nasbench.computed_statistics[module_hash][108][0]["final_test_accuracy"] > 0
    assert nasbench.fixed_statistics[module_hash]["module_adjacency"][0, 0] == 0
    assert nasbench.fixed_statistics[module_hash]["trainable_parameters"] > 0


@settings(max_examples=150, deadline=None)
@given(matrix=cell_matrices(), data=st.data())
def test_api_spec_agrees_with_the_compilers_and_only_unknown_ops_differ(matrix, data) -> None:
    """Property: on ops inside the space both specs are the same cell; an unknown op on one vertex
    makes the API spec invalid exactly when that vertex survives pruning (upstream's rule), while
    the compiler's spec refuses it outright."""
    from nbcompile.nasbench import api
    from nbcompile.space.spec import ModelSpec as StrictSpec

    size = len(matrix)
    interior = data.draw(
        st.lists(st.sampled_from([CONV3X3, CONV1X1, MAXPOOL3X3]), min_size=size - 2, max_size=size - 2)
    )
    ops = [INPUT, *interior, OUTPUT]
    lenient, strict = api.ModelSpec(matrix, ops), StrictSpec(matrix, ops)
    assert (lenient.pruned_matrix, lenient.pruned_ops, lenient.is_valid()) == (
        strict.pruned_matrix,
        strict.pruned_ops,
        strict.is_valid(),
    )
    if strict.is_valid():
        assert lenient.module_hash == strict.module_hash
    if size < 3:
        return
    vertex = data.draw(st.integers(1, size - 2))
    odd_ops = [*ops[:vertex], "conv5x5", *ops[vertex + 1 :]]
    odd = api.ModelSpec(matrix, odd_ops)
    assert odd.original_ops[vertex] == "conv5x5"
    assert odd.is_valid() == (strict.is_valid() and vertex not in strict.kept_vertices)
    with pytest.raises(SpecError):
        StrictSpec(matrix, odd_ops)
