#!/usr/bin/env bash
# The check run before changing the keras pin in pyproject.toml; CI does not run it (.ci/run installs the
# newest keras the pin allows, so only this script ever tests the lowest). It installs the project with
# keras==LOWEST into a throwaway venv (downloads from PyPI: a few minutes) and runs the tests that lean on
# Keras' behaviour (step, backends, the StatelessScope contract, checkpoint keys) on both backends. pip picks
# the TensorFlow that release allows (TensorFlow 2.21 needs keras>=3.12; with keras 3.8 pip took 2.19.1).
# Raise the pin's lower bound to a version this passes on. Last run: keras 3.8.0, tensorflow 2.19.1,
# jax 0.10.2: passed on both backends.
#
#   .ci/check_lowest_keras.sh            # the lower bound of "keras>=X,<Y" in pyproject.toml
#   .ci/check_lowest_keras.sh 3.10.0     # any other version
#   LOWKERAS_VENV=/tmp/v .ci/check_lowest_keras.sh   # reuse a venv (default /tmp/lowkeras-VERSION)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
version="${1:-$(sed -n 's/.*"keras>=\([0-9][0-9.]*\),.*/\1/p' "$repo/pyproject.toml")}"
if [ -z "$version" ]; then
    echo "no keras>=X lower bound found in $repo/pyproject.toml; pass a version" >&2
    exit 2
fi
venv="${LOWKERAS_VENV:-/tmp/lowkeras-$version}"
python3 -m venv "$venv"
"$venv/bin/pip" install -q -e "$repo[test]" "keras==$version"
cd "$repo"
"$venv/bin/python" -c 'import jax, keras, tensorflow as tf; print(f"keras {keras.__version__}, tensorflow {tf.__version__}, jax {jax.__version__}")' 2>/dev/null
status=0
for backend in tensorflow jax; do
    echo "== KERAS_BACKEND=$backend"
    KERAS_BACKEND=$backend "$venv/bin/python" -m pytest -q tests/test_step.py tests/test_backends.py \
        tests/test_keras_contract.py tests/test_checkpoint.py || status=1
done
exit $status
