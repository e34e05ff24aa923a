"""Reading the JSON documents that studies, proxies work and training sweeps write: a file that is
not one gives a one-line error naming the file and what it should be."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbcompile.errors import DatasetError
from nbcompile.fileio import read_json_document


def test_a_document_of_the_format_is_returned(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text('{"format": "f-1", "x": [1, 2]}', encoding="utf-8")
    assert read_json_document(path, "a thing", "f-1") == {"format": "f-1", "x": [1, 2]}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", "Expecting property name"),
        (b"\xff\xfe", "codec can't decode"),
        (b"[1, 2]", "no format 'f-1'"),
        (b'{"format": "f-2"}', "no format 'f-1'"),
        (b'{"x": 1}', "no format 'f-1'"),
    ],
)
def test_anything_else_is_a_one_line_error_naming_the_file(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(content)
    with pytest.raises(DatasetError) as error:
        read_json_document(path, "a thing", "f-1")
    message = str(error.value)
    assert message.startswith(f"{path}: not a thing (") and why in message and "\n" not in message
