#!/usr/bin/env bash
# The GPU check: bench/pmap_overhead.py on a GPU host, printing the same JSON as on CPU.
# The host is expected to have JAX, flax and optax and no network. This package's other
# dependencies are not needed by the benchmark; where wheels of them were brought along in
# .whl/, they are installed from there, never from the network. To bring pyzmq for a host with
# Python 3.12 (the Distributed start-up figure needs it), on a machine with a network:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .whl pyzmq
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/lagom-site .whl/*.whl
  export PYTHONPATH="/tmp/lagom-site:$PYTHONPATH"
fi
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
# From lagom() to the first step of a Distributed pmap run on this host's GPU (needs pyzmq,
# from .whl/ if the host lacks it); then the overhead benchmark, whose JSON is the last line.
if python3 -c "import zmq, msgpack, cloudpickle" 2> /dev/null; then
  python3 bench/distributed_startup.py --strategy pmap --agents 1 --cpu-devices 0 --repeats 3 | tail -n 1
  python3 bench/gpu_agents.py | tail -n 1  # two local agents on this host's GPU(s): shared out, no 75% grab
  # the compile share of the README's search and the main job, before and after (needs sklearn too)
  if python3 -c "import sklearn" 2> /dev/null; then
    python3 bench/compile.py | tail -n 1
    # agents from the clean zygote that loaded JAX for them (its import must not start CUDA there)
    python3 bench/preload.py --rounds 1 --searches 2 | tail -n 1
    # packed search on the GPU: MLP and CNN, K = 1..64 lanes, trials per minute (Optuna too, if there)
    python3 bench/pack.py --seconds 60 --packs 1 4 16 64 $(python3 -c "import optuna" 2> /dev/null || echo --no-optuna) | tail -n 1
  fi
fi
python3 bench/pmap_overhead.py --preset gpu "$@"
