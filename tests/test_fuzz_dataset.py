"""Seeded fuzzing of dataset files: every corrupted file ends in a one-line DatasetError, or loads
exactly what an independent reader (tests/reference_reader.py) finds in it; nothing is cached
for a refused file and no temporary is left behind."""

from __future__ import annotations

import base64
import json
import math
import random
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import reference_reader as reference

from nbcompile.errors import DatasetError
from nbcompile.nasbench import NASBench
from nbcompile.nasbench.writer import encode_record
from nbcompile.space.enumeration import sample_cells
from nbcompile.synthetic.fixture import fixture_records

SEED = 13
CASES = 338
#: JSON values a hostile file puts in a field (integers that overflow int64 are tested below).
HOSTILE = [
    -1,
    0,
    1,
    2**31,
    1.5,
    108.0,
    "108",
    None,
    True,
    [],
    {},
    "",
    "x" * 300,
    "0" * 49,
    "1" * 4,
    "input,output",
    "conv3x3",
    "0" * 32,
    "f" * 31,
    [108],
    {"a": 1},
    "conv3x3-bn-relu,,output",
]


@pytest.fixture(scope="module")
def good_payloads() -> list[bytes]:
    """3 cells × 2 budgets × 3 repeats: JSON payloads as the official files have them."""
    return [encode_record(record) for record in fixture_records(sample_cells(3), (4, 108))]


def _file(payloads: list[bytes]) -> bytes:
    return b"".join(reference.frame(payload) for payload in payloads)


def _with_fields(payload: bytes, change: Callable[[list], list], compact: bool = False) -> bytes:
    fields = change(json.loads(payload))
    return json.dumps(fields, separators=(",", ":") if compact else None).encode()


def _with_metrics(payload: bytes, change: Callable[[bytearray], bytes]) -> bytes:
    def edit(fields: list) -> list:
        fields[4] = base64.b64encode(change(bytearray(base64.b64decode(fields[4])))).decode()
        return fields

    return _with_fields(payload, edit)


def _mutant(kind: str, rng: random.Random, good: list[bytes]) -> bytes:
    payloads = list(good)
    at = rng.randrange(len(payloads))
    payload = payloads[at]
    if kind == "raw byte":  # CRCs not fixed: the framing must notice
        data = bytearray(_file(payloads))
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == "truncate":
        data = _file(payloads)
        return data[: rng.randrange(len(data))]
    if kind == "json byte":
        changed = bytearray(payload)
        changed[rng.randrange(len(changed))] = rng.randrange(256)
        payloads[at] = bytes(changed)
    elif kind == "json splice":
        position = rng.randrange(len(payload))
        insert = bytes(rng.choice(b'[]{},:"0123456789e.-\\ ') for _ in range(rng.randrange(3)))
        payloads[at] = payload[:position] + insert + payload[position + rng.randrange(3) :]
    elif kind == "protobuf byte":

        def flip(raw: bytearray) -> bytes:
            raw[rng.randrange(len(raw))] = rng.randrange(256)
            return bytes(raw)

        payloads[at] = _with_metrics(payload, flip)
    elif kind == "protobuf length":
        cut = rng.randrange(1, 40)
        tail = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
        payloads[at] = _with_metrics(
            payload, lambda raw: bytes(raw[:-cut]) if rng.random() < 0.5 else bytes(raw) + tail
        )
    elif kind == "protobuf double":

        def special(raw: bytearray) -> bytes:
            tags = [i for i in range(len(raw) - 8) if raw[i] in (0x11, 0x19, 0x21, 0x29)]
            position = rng.choice(tags) + 1
            raw[position : position + 8] = struct.pack("<d", rng.choice([math.nan, math.inf, -math.inf, -0.0, 1e308]))
            return bytes(raw)

        payloads[at] = _with_metrics(payload, special)
    elif kind == "parameters":  # one cell's trainable_parameters, in all its records: negative, edges, huge
        value = rng.choice([-1, -(2**31), 2**31 - 1, 2**31, 2**40, 0]) % 2**64
        varint = bytearray()
        while True:
            varint.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
            value >>= 7
            if not value:
                break

        def parameters(raw: bytearray) -> bytes:
            end = len(raw) - 9  # the official layout ends: 0x10 varint, then 0x19 double
            start = max(i for i in range(end) if raw[i] == 0x10 and all(b & 0x80 for b in raw[i + 1 : end - 1]))
            return bytes(raw[: start + 1]) + bytes(varint) + bytes(raw[end:])

        module_hash = json.loads(payload)[0]
        payloads = [_with_metrics(p, parameters) if json.loads(p)[0] == module_hash else p for p in payloads]
    elif kind == "field value":
        index, value = rng.randrange(5), rng.choice(HOSTILE)
        payloads[at] = _with_fields(payload, lambda fields: [*fields[:index], value, *fields[index + 1 :]])
    elif kind == "field count":
        index = rng.randrange(5)
        drop = rng.random() < 0.5
        payloads[at] = _with_fields(
            payload, lambda f: f[:index] + f[index + 1 :] if drop else f[: index + 1] + f[index:]
        )
    elif kind == "records":  # duplicated, dropped or moved records: a valid file
        action = rng.randrange(3)
        if action == 0:
            payloads.insert(rng.randrange(len(payloads)), payload)
        elif action == 1:
            del payloads[at]
        else:
            payloads.insert(rng.randrange(len(payloads)), payloads.pop(at))
    elif kind == "hash":
        other = json.loads(payloads[rng.randrange(len(payloads))])[0]
        new = other if rng.random() < 0.5 else "".join(rng.choice("0123456789abcdef") for _ in range(32))
        payloads[at] = _with_fields(payload, lambda fields: [new, *fields[1:]])
    elif kind == "spacing":
        payloads[at] = _with_fields(payload, lambda fields: fields, compact=True)
    else:
        raise AssertionError(kind)
    return _file(payloads)


KINDS = [
    "raw byte",
    "truncate",
    "json byte",
    "json splice",
    "protobuf byte",
    "protobuf length",
    "protobuf double",
    "parameters",
    "field value",
    "field count",
    "records",
    "hash",
    "spacing",
]


def _same_runs(got: list[tuple[float, ...]], want: list[tuple[float, ...]]) -> bool:
    return len(got) == len(want) and all(
        len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))
        for a, b in zip(got, want)
    )


def _assert_holds(dataset: NASBench, expected: dict[str, reference.Cell], case: str) -> None:
    assert list(dataset.hash_iterator()) == list(expected), case
    budgets = {epochs for cell in expected.values() for epochs in cell.runs}
    for module_hash, cell in expected.items():
        fixed, computed = dataset.get_metrics_from_hash(module_hash)
        size = len(cell.ops)
        rows = [[int(char) for char in cell.adjacency[r * size : (r + 1) * size]] for r in range(size)]
        assert fixed["module_adjacency"].tolist() == rows, case
        assert fixed["module_operations"] == list(cell.ops), case
        assert fixed["trainable_parameters"] == cell.parameters, case
        assert set(computed) == budgets, case
        for epochs in budgets:
            got = [tuple(run[name] for name in reference.METRICS) for run in computed[epochs]]
            assert _same_runs(got, cell.runs.get(epochs, [])), (case, module_hash, epochs)


def _outcome(data: bytes, path: Path, cache: Path, case: str) -> str:
    """Load ``data`` as a dataset and check the outcome; returns "loaded", "refused" or "ambiguous"."""
    try:
        expected = reference.read(data)
        verdict = "ok"
    except reference.Reject:
        verdict = "reject"
    except reference.Ambiguous:
        verdict = "ambiguous"
    path.write_bytes(data)
    before = set(cache.iterdir()) if cache.exists() else set()
    try:
        dataset = NASBench(path, cache_dir=cache, workers=1, progress=False)
    except DatasetError as error:
        assert "\n" not in str(error) and str(error), case
        assert (set(cache.iterdir()) if cache.exists() else set()) == before, case  # nothing cached
        return "refused"
    assert verdict != "reject", f"{case}: a file the reference reader refuses was loaded"
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")], case
    again = NASBench(path, cache_dir=cache, workers=1, progress=False)  # from the cache, memory-mapped
    assert not again.converted, f"{case}: the cache written for a file it read is not usable"
    if verdict == "ok":
        _assert_holds(dataset, expected, case)
        _assert_holds(again, expected, case)
        return "loaded"
    return "ambiguous"


def test_corrupted_files_are_refused_in_one_line_or_read_correctly(good_payloads, tmp_path) -> None:
    rng = random.Random(SEED)
    outcomes = {"loaded": 0, "refused": 0, "ambiguous": 0}
    for number in range(CASES):
        kind = KINDS[number % len(KINDS)]
        data = _mutant(kind, rng, good_payloads)
        outcomes[
            _outcome(data, tmp_path / f"case{number}.tfrecord", tmp_path / "cache", f"case {number} ({kind})")
        ] += 1
    # the fuzzer is worth something only if it produces both kinds of file
    assert outcomes["loaded"] >= 40 and outcomes["refused"] >= 100, outcomes


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("epochs 2**63", lambda fields: [fields[0], 2**63, *fields[2:]]),
        ("epochs 10**30", lambda fields: [fields[0], 10**30, *fields[2:]]),
        ("nesting bomb", None),
        ("5,000-digit integer", None),
    ],
)
def test_hostile_values_are_one_line_errors(good_payloads, tmp_path, name, change) -> None:
    if change is not None:
        payload = _with_fields(good_payloads[1], change)
    elif name == "nesting bomb":
        payload = b"[" * 100_000
    else:
        payload = (
            json.dumps(json.loads(good_payloads[1])[:1]).encode()[:-1] + b", " + b"7" * 5000 + b', "0", "input", ""]'
        )
    data = _file([good_payloads[0], payload, *good_payloads[2:]])
    assert _outcome(data, tmp_path / "hostile.tfrecord", tmp_path / "cache", name) == "refused"
