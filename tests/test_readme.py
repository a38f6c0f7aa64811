"""Every Python block of the README runs as written, in order, as a reader would paste them."""
import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.slow
def test_every_python_block_of_the_readme_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # lagom-runs/ lands here
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 7
    namespace = {"__name__": "readme"}  # functions defined here go to agents by value
    for i, code in enumerate(blocks):
        exec(compile(code, f"README.md, python block {i + 1}", "exec"), namespace)
    assert namespace["result"].ranking  # the last search block left its result
    assert len(list((tmp_path / "lagom-runs").iterdir())) >= 8  # one folder per lagom() call
