"""The plugin package's own tests: lagom's contract suites, reused with one fixture each."""
import pytest

from lagom_example_plugins import Ascending, Threshold
from plugins.testing import EarlyStopperContract, OptimizerContract


class TestAscending(OptimizerContract):
    @pytest.fixture
    def optimizer(self):
        return Ascending()


class TestThreshold(EarlyStopperContract):
    @pytest.fixture
    def stopper(self):
        return Threshold(limit=0.5)
