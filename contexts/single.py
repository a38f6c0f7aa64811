"""``Single``: one run of the training function, here, as on a laptop.

The run goes through the same kernel, agent and reporter as a search (so what works here
works there), with the agent in a thread of this process over ``inproc://``: no subprocess,
output straight to the terminal, and a failure raises here with the function's traceback.
"""
from __future__ import annotations

from typing import Any

from kernel.controller import Controller, TrialSpec

from .base import ConfigError, Context, OneTrial, inproc_url


class TrialFailed(RuntimeError):
    """The single run raised; the message carries the function's own traceback.

    Where the run happened in this process (Single's default), the exception raised is also an
    instance of the function's own exception's class, chained to the original (``__cause__``):
    ``except KeyError`` catches it, and ``pdb.post_mortem(e.__cause__.__traceback__)`` (or
    Jupyter's %debug) opens the function's own frame.
    """

    def __init__(self, message: str, result: Any):
        super().__init__(message)
        self.result = result

    def __str__(self) -> str:
        return str(self.args[0])

    @classmethod
    def like(cls, original: BaseException | None) -> type["TrialFailed"]:
        """TrialFailed, made a subclass of ``original``'s class too when the two can combine."""
        if original is None or not isinstance(original, Exception):
            return cls
        try:
            return type(f"TrialFailed[{type(original).__name__}]", (cls, type(original)), {})
        except TypeError:  # a layout that cannot combine (OSError, say): TrialFailed alone
            return cls


class Single(Context):
    """One run with fixed ``hparams``. ``in_process=False`` runs it in an agent subprocess."""

    name = "single"

    def __init__(self, hparams: dict[str, Any] | None = None, *, metric: str | None = None,
                 direction: str = "max", in_process: bool = True, study: Any = None):
        if hparams is None:
            hparams = {}
        if not isinstance(hparams, dict) or not all(isinstance(k, str) for k in hparams):
            raise ConfigError(f"Single(hparams={hparams!r}): hparams must be a dict with string keys")
        self.hparams = dict(hparams)
        self.metric = metric
        self.direction = direction
        self.workers = 1
        self.launcher = "thread" if in_process else "local"
        self._in_process = in_process
        self._use_study(study)

    def controller(self) -> Controller:
        return OneTrial(TrialSpec(dict(self.hparams)), self.metric, self.direction, {"hparams": self.hparams})

    def default_url(self) -> str:
        return inproc_url() if self._in_process else super().default_url()

    def finish(self, result):
        trial = result.trials[0] if result.trials else None
        if trial is not None and trial.state == "failed":
            original = result.errors.get(trial.id)
            error = TrialFailed.like(original)(f"the training function failed: {trial.error}\n\n"
                                               f"{trial.traceback or ''}", result)
            raise error from original
        return result

    def __repr__(self) -> str:
        return f"Single(hparams={self.hparams!r})"
