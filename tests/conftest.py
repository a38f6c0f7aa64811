import os
import sys

import pytest

# Agent subprocesses import training functions from tests/fns.py by reference; the local
# launcher hands them this interpreter's sys.path, which pytest has extended with tests/.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Reports (matplotlib, a second per experiment) only where a test asks for one.
os.environ.setdefault("LAGOM_REPORT", "0")


@pytest.fixture
def runs(tmp_path):
    """A folder for experiment folders, so tests never write into the working tree."""
    return tmp_path / "runs"
