"""The fuzz targets of bench/fuzz.py on random input (atheris drives them by coverage there):
what faces the network lets out nothing but the errors it is meant to raise."""
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import fuzz_targets  # noqa: E402


@pytest.mark.parametrize("target", sorted(fuzz_targets.TARGETS))
def test_a_target_survives_random_input(target):
    rng = random.Random(target)
    run = fuzz_targets.TARGETS[target]
    for _ in range(1500):
        run(rng.randbytes(rng.randrange(0, 160)))
