"""Errors of the dataset layer."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset file is malformed; the message names the record index and byte offset."""
