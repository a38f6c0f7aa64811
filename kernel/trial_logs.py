"""A trial's printed output, kept once and within bounds.

A trial that prints without end (a progress bar in a loop, a debug print per step) must not
fill the disk: its log keeps the first ``head`` characters as they come, then holds only the
last ``tail`` in memory and writes them when the trial ends, after one line that says how much
was cut. What a user looks for is at the start (the configuration, the first epochs) or at the
end (the last epochs, the error).
"""
from __future__ import annotations

import collections
from pathlib import Path

LOG_HEAD = 4_000_000  # characters of a trial's output kept from its start
LOG_TAIL = 4_000_000  # and from its end


class CappedLog:
    def __init__(self, path: Path, head: int | None = None, tail: int | None = None):
        self._file = open(path, "a", encoding="utf-8")
        self.head = LOG_HEAD if head is None else head
        self.tail = LOG_TAIL if tail is None else tail
        self._written = path.stat().st_size  # a resumed trial's log goes on after what is there
        self._held: collections.deque[str] = collections.deque()
        self._held_size = self._cut_size = self._cut_lines = 0

    def write(self, text: str) -> None:
        if not self._held and self._written < self.head:
            room = self.head - self._written
            fits = len(text) if len(text) <= room else text.rfind("\n", 0, room) + 1  # whole lines
            self._file.write(text[:fits])
            self._written += fits
            text = text[fits:]
            if not text:
                return
            self._written = self.head  # full: what follows is held
        self._held.append(text)
        self._held_size += len(text)
        while self._held_size > self.tail and len(self._held) > 1:
            cut = self._held.popleft()
            self._held_size -= len(cut)
            self._cut_size += len(cut)
            self._cut_lines += cut.count("\n")

    def close(self) -> None:
        kept = "".join(self._held)
        if len(kept) > self.tail:  # held in whole messages: cut the oldest at a line's end
            start = kept.find("\n", len(kept) - self.tail - 1) + 1
            self._cut_size += start
            self._cut_lines += kept.count("\n", 0, start)
            kept = kept[start:]
        try:
            if self._cut_size:
                self._file.write(f"[lagom: {self._cut_lines:,} lines ({self._cut_size:,} characters) of this "
                                 f"trial's output were cut here: a log keeps its first {self.head:,} and last "
                                 f"{self.tail:,} characters]\n")
            self._file.write(kept)
        finally:
            self._held.clear()
            self._file.close()
