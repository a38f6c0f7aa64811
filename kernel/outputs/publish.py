"""A drawn report moves into its experiment folder at the end, whole, or not at all.

The report is drawn by a process of its own within a second or two of ``lagom()`` returning.
A user may remove the experiment folder in that time (a ``with tempfile.TemporaryDirectory()``
around ``lagom()``): files appearing in a folder while ``shutil.rmtree`` removes it make it
fail ("Directory not empty"), and the user's program with it, after a search that succeeded.
So the plots are drawn in a folder of the report's own and moved in last, only while the
experiment folder is there, report.html after its images (a reader that waits for it finds
them).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

PAGE = "report.html"


def publish(staging: Path, folder: Path) -> Path:
    """Move every file of ``staging`` into ``folder``, ``report.html`` last; the page's path."""
    names = sorted(p.name for p in staging.iterdir() if p.name != PAGE) + [PAGE]
    for name in names:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} was removed while its report was drawn; no report written")
        part = folder / f"{name}.part"
        shutil.move(str(staging / name), str(part))
        os.replace(part, folder / name)  # each file whole, for a reader
    return folder / PAGE
