#!/usr/bin/env bash
# The GPU check: bench/pmap_overhead.py on a GPU host, printing the same JSON as on CPU.
# The host is expected to have JAX, flax and optax and no network. This package's other
# dependencies are not needed by the benchmark; where wheels of them were brought along in
# .whl/ (pip download ... -d .whl), they are installed from there, never from the network.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/lagom-site .whl/*.whl
  export PYTHONPATH="/tmp/lagom-site:$PYTHONPATH"
fi
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
python3 bench/pmap_overhead.py --preset gpu "$@"
