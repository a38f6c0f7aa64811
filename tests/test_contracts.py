"""The built-in plugins pass the contract suites that third-party plugins reuse (plugins/testing.py)."""
import pytest

from plugins.earlystop import MedianStopping, NoStopping
from plugins.launchers import NullLauncher
from plugins.launchers.local import LocalLauncher
from plugins.launchers.thread import ThreadLauncher
from plugins.optimizers import ASHA, PBT, TPE, GridSearch, NullOptimizer, RandomSearch
from plugins.strategies import DataParallel, LiteralPmap, SingleDevice
from plugins.testing import EarlyStopperContract, LauncherContract, OptimizerContract, StrategyContract, drive

pytestmark = pytest.mark.filterwarnings("ignore:gridsearch. num_trials")  # the contract's 12 cut the grid


@pytest.fixture(params=["random", "grid", "asha", "tpe", "pbt"])
def optimizer(request):
    return {"random": RandomSearch(), "grid": GridSearch(resolution=2), "asha": ASHA(3, 1, 9),
            "tpe": TPE(n_startup=4), "pbt": PBT(6, 2, population=4, quantile=0.5)}[request.param]


class TestBuiltinOptimizers(OptimizerContract):
    pass


@pytest.fixture(params=["median", "median-warmup", "none"])
def stopper(request):
    return {"median": MedianStopping(), "median-warmup": MedianStopping(warmup=2), "none": NoStopping()}[request.param]


class TestBuiltinStoppers(EarlyStopperContract):
    pass


@pytest.fixture(params=["single", "pmap", "jaxpmap"])
def strategy(request):
    pytest.importorskip("jax")
    return {"single": SingleDevice(), "pmap": DataParallel(), "jaxpmap": LiteralPmap()}[request.param]


class TestBuiltinStrategies(StrategyContract):
    pass


class TestLocalLauncher(LauncherContract):
    @pytest.fixture
    def launcher(self):
        return LocalLauncher()


class TestThreadLauncher(LauncherContract):
    agents_are_processes = False

    @pytest.fixture
    def launcher(self):
        return ThreadLauncher(echo=False)


def test_the_null_optimizer_runs_nothing():
    from plugins.testing import default_space

    opt = NullOptimizer()
    opt.setup(default_space(), num_trials=None, direction="max", seed=0)
    assert drive(opt) == [] and opt.total_trials() == 0


def test_the_null_launcher_starts_nothing(tmp_path):
    launcher = NullLauncher()
    assert launcher.start(url="tcp://127.0.0.1:9", token="t" * 16, count=3, log_dir=tmp_path,
                          on_exit=lambda *a: None) == []
    launcher.stop()
