"""Big dataset files, fast: one real record's graph and metrics under many made-up module hashes
(the converter does not recompute hashes), so that conversion takes seconds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from reference_reader import frame

from nbcompile.space.enumeration import sample_cells
from nbcompile.synthetic.fixture import ONLY_108, fixture_records


def write_many_cells(path: Path, cells: int, repeats: int = 3) -> Path:
    """A valid file of ``cells`` cells × ``repeats`` runs at 108 epochs."""
    template = [json.loads(_payload(record)) for record in list(fixture_records(sample_cells(1), ONLY_108))[:repeats]]
    with open(path, "wb") as stream:
        for number in range(cells):
            module_hash = hashlib.md5(str(number).encode()).hexdigest()
            stream.writelines(frame(json.dumps([module_hash, *fields[1:]]).encode()) for fields in template)
    return path


def _payload(record) -> bytes:
    from nbcompile.nasbench.writer import encode_record

    return encode_record(record)
