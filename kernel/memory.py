"""The garbage collector while a kernel serves: trials live as long as the experiment, and the
collector's defaults were made for programs whose objects die young.

- The youngest generation's threshold is raised to YOUNG_GC while the kernel serves (Python's
  is 700). A trivial trial leaves ~40 objects the kernel keeps (the trial, its history, its
  attempt), so the default collected every ~20 trials: 5% of the kernel's time at 20k
  trials/s, for objects that all survive; the kernel's loop makes few reference cycles, and
  those wait for at most this many allocations.
- Every FREEZE_EVERY trial ends, what exists moves to the permanent generation: a full
  collection that scans 100,000 trials pauses the loop ~100 ms (11 such pauses in a 100k-trial
  run: 1.1 s, and its dispatch p99).

The process's own settings come back when the experiment ends, and a process that froze
objects itself is left alone.
"""
from __future__ import annotations

import gc

FREEZE_EVERY = 2000
YOUNG_GC = 20_000


class GcPolicy:
    def __init__(self) -> None:
        self._may_freeze = gc.get_freeze_count() == 0
        self._ended_since_freeze = 0
        self._threshold: tuple[int, ...] | None = None  # the process's, while YOUNG_GC is in force

    def serving(self) -> None:
        threshold = gc.get_threshold()
        if 0 < threshold[0] < YOUNG_GC:
            self._threshold = threshold
            gc.set_threshold(YOUNG_GC, *threshold[1:])

    def trial_ended(self) -> None:
        self._ended_since_freeze += 1
        if self._may_freeze and self._ended_since_freeze >= FREEZE_EVERY:
            self._ended_since_freeze = 0
            gc.freeze()

    def done(self) -> None:
        if self._may_freeze:
            gc.unfreeze()
        if self._threshold is not None:
            gc.set_threshold(*self._threshold)
            self._threshold = None
