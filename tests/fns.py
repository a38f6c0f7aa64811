"""Training functions for the tests: importable by agent processes (by reference)."""
import os
import threading
import time
from pathlib import Path


def quadratic(hparams, reporter):
    """Peaks at x = 0.3; broadcasts three steps. With ``barrier``, the first trials wait until
    ``parties`` agent processes have each started one."""
    x = hparams["x"]
    if "barrier" in hparams:
        from plugins.testing import barrier

        barrier(hparams["barrier"], hparams["parties"], timeout=30.0)
    time.sleep(hparams.get("sleep", 0.0))  # stands for training time
    value = 1.0 - (x - 0.3) ** 2
    for step in range(3):
        reporter.broadcast(metric=value * (step + 1) / 3, step=step)
    return {"score": value, "x": x}


def fails_on_odd(hparams, reporter):
    if hparams["n"] % 2:
        raise ValueError(f"odd n={hparams['n']} is not allowed")
    return {"score": float(hparams["n"])}


def prints(hparams, reporter):
    print(f"hello from trial with n={hparams['n']}")
    print("second line", flush=True)
    reporter.log("via reporter.log")
    return float(hparams["n"])


def prints_lines(hparams, reporter):
    for i in range(hparams["lines"]):
        print(f"line {i} of {hparams['lines']}")
    return {"score": 1.0}


def returns_wrong_metric(hparams, reporter):
    return {"loss": 1.0}


def returns_number(hparams):
    return hparams["x"] * 2


def asks_for_nonsense(hparams, optimizer_state):
    return 0.0


def slow_until_stopped(hparams, reporter):
    """Broadcasts until the kernel stops it (or 2000 steps)."""
    for step in range(2000):
        reporter.broadcast(metric=float(step), step=step)
        time.sleep(0.001)
    return {"score": -1.0}


def pid_and_sleep(hparams, reporter):
    reporter.broadcast(metric=float(os.getpid()), step=0)
    time.sleep(hparams.get("sleep", 0.0))
    return {"score": float(hparams["n"]), "pid": os.getpid()}


def countdown(hparams, reporter):
    """Broadcasts n, n-1, ... down to -20, slowly enough for a stop to arrive."""
    n = hparams["n"]
    for step, value in enumerate(range(n, -21, -1)):
        time.sleep(0.01)
        reporter.broadcast(metric=float(value), step=step)
    return {"score": -20.0}


def flat_curve(hparams, reporter):
    """Broadcasts x ten times: a trial as good as its x."""
    for step in range(10):
        reporter.broadcast(metric=hparams["x"], step=step)
    return {"score": hparams["x"]}


def dist_fails_on_rank1(hparams, reporter, strategy):
    """Rank 1 raises after one step; rank 0 goes on with collective steps and would wait forever."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    def step_fn(w, x):
        g = jax.grad(lambda w: jnp.mean((x @ w) ** 2))(w)
        return w - 0.1 * strategy.mean(g)

    step = strategy.step(step_fn)
    w = strategy.replicate(np.ones((4,), np.float32))
    n = strategy.num_devices // strategy.process_count
    x = np.ones((2 * n, 4), np.float32)
    w = step(w, strategy.shard(x))
    jax.block_until_ready(w)
    if strategy.process_index == 1:
        raise RuntimeError("boom on rank 1")
    for i in range(1_000_000):
        w = step(w, strategy.shard(x))
        if i % 10 == 0:
            jax.block_until_ready(w)
            reporter.broadcast(metric=float(i), step=i)
    return 0.0


def reports_devices(hparams, reporter, strategy):
    return {"devices": strategy.num_devices, "processes": strategy.process_count,
            "rank": strategy.process_index, "name": strategy.name}


def until_pid_exits(hparams, reporter):
    """Lasts until process ``pid`` has ended (at most 30 s): keeps an experiment open meanwhile."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{hparams['pid']}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):  # exited, not yet reaped
                    return {"score": 1.0}
        except FileNotFoundError:
            return {"score": 1.0}
        time.sleep(0.05)
    raise TimeoutError(f"process {hparams['pid']} is still running")


def after_marker(hparams, reporter):
    """Waits (at most 30 s) until file ``marker`` exists, then works for ``sleep`` seconds."""
    deadline = time.monotonic() + 30
    while not os.path.exists(hparams["marker"]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{hparams['marker']} never appeared")
        time.sleep(0.01)
    time.sleep(hparams.get("sleep", 0.0))
    return {"score": hparams["x"]}


def ignores_stop(hparams, reporter):
    """Catches every EarlyStop and goes on broadcasting: only a kill ends it."""
    from kernel import EarlyStop

    step = 0
    while True:
        try:
            reporter.broadcast(metric=float(step), step=step)
        except EarlyStop:
            pass
        step += 1
        time.sleep(0.01)


def crashes_on(hparams, reporter):
    """n == 1 ends its own process (os._exit), n == 2 segfaults it; the others return (after
    ``sleep`` seconds, standing for training)."""
    time.sleep(hparams.get("sleep", 0.0))
    if hparams["n"] == 1:
        os._exit(3)
    if hparams["n"] == 2:
        import ctypes

        ctypes.string_at(0)
    return {"score": float(hparams["n"])}


def hangs_or_returns(hparams, reporter):
    """n == 1 hangs (never broadcasts, never returns); the others return at once."""
    if hparams["n"] == 1:
        while True:
            time.sleep(0.05)
    return {"score": float(hparams["n"]), "pid": os.getpid()}


def one_hangs_a_while(hparams, reporter):
    """n == 0 takes ``hang`` seconds (a trial stuck on something); the others return at once."""
    if hparams["n"] == 0:
        time.sleep(hparams["hang"])
    return {"score": float(hparams["n"])}


def waits_for_the_others(hparams, reporter):
    """n == ``waiter`` waits until every other trial has left its file in ``folder`` (60 s at
    most): the trials handed out ahead behind it must run on another agent."""
    folder = Path(hparams["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    if hparams["n"] != hparams["waiter"]:
        (folder / str(hparams["n"])).touch()
        return {"score": float(hparams["n"])}
    deadline = time.monotonic() + 60.0
    while len(os.listdir(folder)) < hparams["trials"] - 1:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(os.listdir(folder))} other trials ran while this one waited")
        time.sleep(0.01)
    return {"score": -1.0}


def hangs_until_released(hparams, reporter):
    """n == ``hang`` waits until the file ``release`` exists (60 s at most); the others return
    after 20 ms."""
    if hparams["n"] == hparams["hang"]:
        wait_for(lambda: os.path.exists(hparams["release"]), "the release file", timeout=60.0)
    time.sleep(0.02)
    return {"score": float(hparams["n"])}


def rises_to_x(hparams, reporter):
    """Learns towards x over ``budget`` epochs, with a little noise; restarts from scratch when
    promoted (no checkpoint), as many training functions do."""
    import random

    rng = random.Random(hparams["x"])
    for epoch in range(hparams.get("budget", 3)):
        reporter.broadcast(metric=hparams["x"] * (1 - 0.5 ** (epoch + 1)) + 0.05 * rng.random(), step=epoch)
    return {"score": hparams["x"]}


def epochs_of_x(hparams, reporter):
    """Trains ``budget`` "epochs" (printing each before its broadcast), as good as its x."""
    for epoch in range(hparams.get("budget", 3)):
        print(f"trained epoch {epoch}")
        reporter.broadcast(metric=hparams["x"] * (epoch + 1), step=epoch)
    return {"score": hparams["x"] * hparams.get("budget", 3)}


def wait_for(probe, what: str, timeout: float = 30.0):
    """``probe()``'s first truthy value, looked for every 10 ms (for things only a file system
    shows, such as an experiment folder made by another thread); fails naming ``what``."""
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not appear within {timeout} s")
        time.sleep(0.01)
    return found


class Background(threading.Thread):
    """``lagom(fn, context, **options)`` on a thread of its own, started at once, for a test that
    watches the experiment while it runs; ``result``, once joined, is its Result (or raises what
    it raised)."""

    def __init__(self, fn, context, **options):
        super().__init__(name="test-experiment", daemon=True)
        self._call, self._outcome = (fn, context, options), None
        self.start()

    def run(self):
        from kernel import lagom

        fn, context, options = self._call
        try:
            self._outcome = (True, lagom(fn, context, **options))
        except BaseException as exc:  # noqa: BLE001 (given to the test through ``result``)
            self._outcome = (False, exc)

    @property
    def result(self):
        done, value = self._outcome or (False, RuntimeError("the experiment has not ended"))
        if not done:
            raise value
        return value

    def folder(self, runs) -> Path:
        """The experiment folder under ``runs``, once its journal exists."""
        return wait_for(lambda: next(Path(runs).glob("*/journal.jsonl"), None), "a journal").parent


def broadcasts_then_waits(hparams, reporter):
    """Broadcasts steps 0 and 1 (and the named value ``loss``), waits (at most 60 s) until file
    ``marker`` exists, then broadcasts step 2 and returns."""
    for step in range(2):
        reporter.broadcast(metric=0.1 * (step + 1), step=step, loss=1.0 - step)
    wait_for(lambda: os.path.exists(hparams["marker"]), hparams["marker"], timeout=60)
    reporter.broadcast(metric=0.3, step=2)
    return {"score": 0.3}


def steps_on_markers(hparams, reporter):
    """Broadcasts step 0, then each further step once file ``<marker>-<n>-<step>`` exists (at most
    60 s each), printing a line per step."""
    n = hparams["n"]
    for step in range(hparams.get("steps", 3)):
        if step:
            wait_for(lambda: os.path.exists(f"{hparams['marker']}-{n}-{step}"), f"marker {n}-{step}", timeout=60)
        print(f"trial n={n} step {step}", flush=True)
        reporter.broadcast(metric=n + 0.1 * (step + 1), step=step)
    return {"score": n + 0.1 * hparams.get("steps", 3)}


def feature_loss(dataset, hparams, reporter):
    """A loss that falls with each feature kept (feature ``a`` counts most), plus the seed's noise."""
    x, _ = dataset()
    weights = {0: 0.5, 1: 0.1, 2: 0.0}
    kept = x.shape[1]
    loss = 1.0 - sum(weights[i] for i in range(kept)) + 0.01 * (hparams.get("seed", 0) % 3)
    return {"loss": loss}


def pbt_toy(hparams, reporter):
    """Gradient descent on (w - 3)^2 from w = 0, one step per budget unit, its state (w, step)
    kept in a JSON checkpoint; returns the sha256 of the checkpoint it loaded and of the one it saved."""
    import hashlib
    import json

    w, start, loaded = 0.0, 0, ""
    if reporter.parent_checkpoint_dir:
        with open(os.path.join(reporter.parent_checkpoint_dir, "state.json"), "rb") as f:
            raw = f.read()
        loaded = hashlib.sha256(raw).hexdigest()
        state = json.loads(raw)
        w, start = state["w"], state["step"]
    for step in range(start, int(hparams["budget"])):
        w -= hparams["lr"] * 2 * (w - 3)
        reporter.broadcast(metric=-(w - 3) ** 2, step=step)
    time.sleep(hparams.get("sleep", 0.0))
    raw = json.dumps({"w": w, "step": int(hparams["budget"])}).encode()
    with open(os.path.join(reporter.checkpoint_dir, "state.json"), "wb") as f:
        f.write(raw)
    return {"score": -(w - 3) ** 2, "loaded": loaded, "saved": hashlib.sha256(raw).hexdigest()}


def two_objectives(hparams, reporter):
    """ZDT1 on two parameters (minimise both; the front: x2 = 0, f2 = 1 - sqrt(f1)), with
    ``budget`` (epochs) adding a bias that shrinks as it grows."""
    import math

    x1, x2 = hparams["x1"], hparams["x2"]
    g = 1 + 9 * x2
    f1, f2 = x1, g * (1 - math.sqrt(x1 / g))
    budget = hparams.get("budget", 9)
    f2 += (0.5 / budget) * (0.5 + 0.5 * math.sin(7 * x1))
    reporter.broadcast(metric=f1, step=0)
    return {"f1": f1, "f2": f2}


def gang_train(hparams, reporter, strategy):
    """Data-parallel gradient descent towards x @ w = 1 on every rank, ``budget`` epochs (a
    ``sleep`` after each); returns the score and how many processes and devices the run had."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    def step_fn(w, x):
        g = jax.grad(lambda w: jnp.mean((x @ w - 1.0) ** 2))(w)
        return w - hparams["lr"] * strategy.mean(g)

    step = strategy.step(step_fn)
    w = strategy.replicate(np.zeros((4,), np.float32))
    n = strategy.num_devices // strategy.process_count
    x = np.ones((2 * n, 4), np.float32)
    loss = 1.0
    for epoch in range(int(hparams.get("budget", 3))):
        w = step(w, strategy.shard(x))
        here = np.asarray(strategy.gather(w))
        loss = float(np.mean((np.ones((1, 4), np.float32) @ here - 1.0) ** 2))
        reporter.broadcast(metric=-loss, step=epoch)
        time.sleep(hparams.get("sleep", 0.0))
    return {"score": -loss, "processes": strategy.process_count, "devices": strategy.num_devices}


def trivial(hparams, reporter):
    """Ten broadcasts and a return: a trial that costs nothing (the kernel's own cost shows)."""
    for step in range(10):
        reporter.broadcast(metric=hparams["x"] * step, step=step)
    return {"score": hparams["x"]}


def line_step(w, x, y, hparams):
    """One step of gradient descent on a linear fit: a step at a module's top level, compiled
    once per shape for every trial of an agent."""
    import jax

    value, grad = jax.value_and_grad(lambda w: ((x @ w - y) ** 2).mean())(w)
    return w - hparams["lr"] * grad, value


def fits_a_line(hparams, reporter, strategy):
    """Five steps of gradient descent on a linear fit of ``width`` features, compiled by
    ``strategy.step``: the step is ``line_step`` (``where="module"``), or one defined here that
    asks for ``hparams`` (``"nested"``), or one that closes over ``lr``, baking it into its
    program as a constant, as most code does (``"baked"``). Returns its losses."""
    import jax
    import jax.numpy as jnp

    width, lr = hparams["width"], hparams["lr"]
    x = jnp.linspace(0.0, 1.0, 8 * width).reshape(8, width)
    y = x.sum(axis=1)

    def loss(w):
        return ((x @ w - y) ** 2).mean()

    def baked(w, x, y):
        value, grad = jax.value_and_grad(loss)(w)
        return w - lr * grad, value

    def nested(w, x, y, hparams):
        value, grad = jax.value_and_grad(loss)(w)
        return w - hparams["lr"] * grad, value

    train_step = {"module": line_step, "nested": nested, "baked": baked}[hparams["where"]]
    step, w, losses = strategy.step(train_step), jnp.zeros(width), {}
    for i in range(5):
        w, value = step(w, x, y)
        losses[f"loss{i}"] = float(value)
    reporter.broadcast(metric=-losses["loss4"], step=0)
    return {"score": -losses["loss4"], **losses}


def readers_agree(folder) -> dict:
    """Every reader of an experiment folder tells the same story: ``status``, the dashboard
    and the timeline behind report.html and resume give each trial the same state and the
    experiment the same outcome. Returns the trials' states by id."""
    from kernel.cli import _status
    from kernel.outputs.dashboard import columns
    from kernel.outputs.dashboard.experiment import Experiment
    from kernel.timeline import Timeline
    from kernel.trials import TrialState

    timeline = Timeline.read(folder)
    states = {tid: t["state"] for tid, t in timeline.trials.items()}
    assert set(states.values()) <= {str(s) for s in TrialState}
    page = Experiment(Path(folder))
    page.update()
    snap = page.snapshot()
    assert {t["id"]: t["state"] for t in columns.decode(snap["trials"])} == states
    assert snap["state"] == timeline.outcome(timeline.alive)
    lines, _ = _status(Path(folder))
    rows = {int(line.split()[0]): line.split()[1] for line in lines[2:] if line.split()[0].isdigit()}
    assert rows == states
    return states


def climb(hparams, reporter, strategy):
    """Written against ``strategy`` (so it packs): each step moves ``w`` (``width`` values) a
    fraction ``lr`` of the way to 1, and ``n`` counts the updates the state received; each
    epoch broadcasts the mean of ``w``. Deterministic, and its score grows with ``lr``."""
    import time

    import jax.numpy as jnp

    width = int(hparams.get("width", 1))

    def step(state, target, hparams):
        w, n = state
        return (w + hparams["lr"] * (target - w), n + 1), w.mean()

    state = strategy.init(lambda h: (jnp.zeros(width), jnp.int32(0)))
    state, saved = strategy.restore(state, reporter)  # a promotion continues its parent's state
    run, score = strategy.step(step), strategy.evaluate(lambda s: s[0].mean())
    for epoch in range(saved.get("epochs", 0), int(hparams.get("budget", 4))):
        for _ in range(3):
            state, _ = run(state, jnp.float32(1.0))
        time.sleep(hparams.get("sleep", 0.0))
        reporter.broadcast(metric=strategy.gather(score(state)), step=epoch)
    updates = strategy.evaluate(lambda s: s[1])(state)
    strategy.save(state, reporter, epochs=int(hparams.get("budget", 4)))
    return {"score": strategy.gather(score(state)), "updates": strategy.gather(updates)}


def climb_or_diverge(hparams, reporter, strategy):
    """``climb``, except that a learning rate above 0.4 diverges: its lane's score is NaN."""
    import jax.numpy as jnp

    def step(w, target, hparams):
        w = w + hparams["lr"] * (target - w)
        return jnp.where(hparams["lr"] > 0.4, jnp.nan, w), w

    w = strategy.replicate(jnp.zeros(()))
    run = strategy.step(step)
    for epoch in range(3):
        w, _ = run(w, jnp.float32(1.0))
        reporter.broadcast(metric=strategy.gather(w), step=epoch)
    return {"score": strategy.gather(w)}


def wine_lanes(dataset, model, hparams, reporter, strategy):
    """A study's model on its data set, written against ``strategy`` (so an ablation's seeds of
    one component pack): each trial's weights come from its own ``seed``; 3 epochs of 20
    full-batch AdamW steps, the training loss broadcast after each."""
    import jax
    import numpy as np
    import optax
    from flax import nnx

    x, y = dataset()
    x = ((x - x.mean(0)) / (x.std(0) + 1e-8)).astype(np.float32)
    graphdef, _ = nnx.split(model(nnx.Rngs(0)))

    def make(h):
        params = nnx.split(model(nnx.Rngs(int(h.get("seed", 0)))))[1]
        return params, optax.adamw(0.0).init(params)

    def loss_of(p, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p)(xb), yb).mean()

    def step(state, batch, hparams):
        p, s = state
        grads = jax.grad(loss_of)(p, *batch)
        updates, s = optax.adamw(hparams.get("lr", 3e-3), weight_decay=1e-2).update(grads, s, p)
        return (optax.apply_updates(p, updates), s), None

    state = strategy.init(make)
    run, loss = strategy.step(step), strategy.evaluate(lambda s, xb, yb: loss_of(s[0], xb, yb))
    for epoch in range(3):
        for _ in range(20):
            state, _ = run(state, strategy.shard((x, y)))
        reporter.broadcast(metric=strategy.gather(loss(state, x, y)), step=epoch)
    return {"loss": strategy.gather(loss(state, x, y))}


def climb_or_hang(hparams, reporter, strategy):
    """``climb`` for one epoch, then, when ``hang`` is 1, hangs (never broadcasts again)."""
    climb({**hparams, "budget": 1}, reporter, strategy)
    while hparams.get("hang"):
        time.sleep(0.05)
    return {"score": 1.0}


def planted(hparams, reporter):
    """A score two parameters decide (``a`` near 0.3, ``b`` near 0.7), one weakly (``c``), and
    three not at all (``d``, ``e``, ``kind``); no JAX, no waiting."""
    score = -4 * (hparams["a"] - 0.3) ** 2 - 4 * (hparams["b"] - 0.7) ** 2 - 0.3 * (hparams["c"] - 0.5) ** 2
    return {"score": score}


def climbs_with_checkpoints(hparams, reporter):
    """Trains ``budget`` epochs towards x, saving its epoch count each epoch; a trial that
    continues another (a promotion, an audit) starts where that one's checkpoint says."""
    start, budget = 0, int(hparams.get("budget", 3))
    saved = reporter.parent_checkpoint_dir and os.path.join(reporter.parent_checkpoint_dir, "epoch")
    if saved and os.path.exists(saved):
        start = int(open(saved).read())
    value = 0.0
    for epoch in range(start, budget):
        with open(os.path.join(reporter.checkpoint_dir, "epoch"), "w") as f:
            f.write(str(epoch + 1))
        value = hparams["x"] * (1 - 0.5 ** (epoch + 1))
        reporter.broadcast(metric=value, step=epoch)
    return {"score": value}
