"""Cell files (nbcompile.space.cellfiles): a damaged .npz of cells is refused in one line or read
exactly as written."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def test_a_cell_archive_flagged_encrypted_is_refused_in_one_line(cells_npz, tmp_path) -> None:
    from nbcompile.errors import SpecError
    from nbcompile.space.cellfiles import read_specs

    data = bytearray(cells_npz.read_bytes())
    entry = data.index(b"PK\x01\x02")  # the first member's central directory entry
    data[entry + 8] |= 1  # general purpose flag bit 0: encrypted
    damaged = tmp_path / "encrypted.npz"
    damaged.write_bytes(bytes(data))
    with pytest.raises(SpecError, match=r"not a cell file written by 'nbcompile enumerate' .*encrypted"):
        read_specs(str(damaged))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255), cut=st.booleans())
def test_damaged_cell_archives_are_refused_or_read_right(cells_npz, tmp_path_factory, where, mask, cut) -> None:
    """Property: a .npz of cells with one byte changed (or cut there) is refused in one line, or
    reads the very cells written (each cell's stored module hash is checked against its graph)."""
    from nbcompile.errors import SpecError
    from nbcompile.space.cellfiles import read_specs

    data = bytearray(cells_npz.read_bytes())
    at = int(where * len(data))
    data[at] ^= mask
    damaged = tmp_path_factory.mktemp("damaged") / "cells.npz"
    damaged.write_bytes(bytes(data[:at] if cut else data))
    expected = [spec.module_hash for _, spec in read_specs(str(cells_npz))]
    try:
        located = read_specs(str(damaged))
    except SpecError as error:
        assert "\n" not in str(error)
        return
    assert [spec.module_hash for _, spec in located if spec.is_valid()] == expected
