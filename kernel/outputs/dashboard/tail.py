"""A file read as it grows: the journal and curves.jsonl, from where the last look stopped."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from ... import fastjson


class Tail:
    """The complete lines appended to a file since the last read (a line cut off mid-write
    waits for its end), read ``CHUNK`` bytes at a time: a 120 MB journal is never in memory whole."""

    CHUNK = 4 << 20

    def __init__(self, path: Path):
        self.path, self.offset, self._rest = path, 0, b""

    def read(self) -> Iterator[dict[str, Any]]:
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return
        if size <= self.offset:
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            while self.offset < size:
                data = f.read(min(self.CHUNK, size - self.offset))
                if not data:
                    return
                self.offset += len(data)
                *lines, self._rest = (self._rest + data).split(b"\n")
                yield from (record for line in lines if (record := _parse(line)) is not None)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = fastjson.loads(line) if line.strip() else None
    except ValueError:  # a torn line from a kernel killed mid-write: skipped, as resume does
        return None
    return record if isinstance(record, dict) else None
