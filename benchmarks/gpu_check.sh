#!/usr/bin/env bash
# One short GPU check (under 5 minutes): every example for a short budget with KERAS_BACKEND=jax,
# on the GPU and on the CPU, printing the device each run stepped on and its steps per second.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]
#
# Made for a machine with an NVIDIA GPU and JAX with CUDA but possibly without Keras, gymnasium or
# network access: wheels placed beforehand in the checkout's ignored .whl/ folder are installed first
# (docs/benchmarks.md, "GPU check", says which and how to download them). Works on a CPU-only machine too (the
# GPU rows then say so).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-$(mktemp -d)}}
mkdir -p "$out"

if compgen -G ".whl/*.whl" >/dev/null; then
  site=/tmp/customloop-site
  # One wheel at a time: a wheel built for another Python is skipped, not fatal (the import check below decides).
  for whl in .whl/*.whl; do
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$whl" \
      2>/dev/null || echo "gpu_check: skipped $(basename "$whl") (not installable here)"
  done
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1

python3 - <<'PY' || exit 1
import importlib.util, sys
need = ["jax", "keras", "numpy", "gymnasium", "tqdm", "PIL", "tensorboardX"]
missing = [m for m in need if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu_check: missing packages {missing}: put their wheels in .whl/ (see docs/benchmarks.md, GPU check)")
import jax
print(f"jax {jax.__version__}; devices: {jax.devices()}")
PY

gpu=$(python3 -c "import jax; print(int(any(d.platform == 'gpu' for d in jax.devices())))")

# name | args (short budgets) | how to count steps from summary.json
mnist=${MNIST_DIR:-../shared/data/mnist}
runs=(
  "sum|--epochs 5 --steps-per-call 100|summary['epochs'] * 100"
  "gan_2d|--steps 3000|summary['steps']"
  "ppo|--max-env-steps 100000 --eval-episodes 1|summary['env_steps']"
  "ppo|--env-backend gymnasium --max-env-steps 30000 --eval-episodes 1|summary['env_steps']"
)
# The image GAN runs once, on the GPU only, in its own section below (on a CPU one epoch on JAX alone outlasts
# a row's time limit: XLA's CPU convolutions).
[ -d "$mnist" ] || echo "(no MNIST in $mnist: set MNIST_DIR to include the image GAN)"

printf '%-10s %-5s %-34s %10s %8s %s\n' example where device steps/s seconds status
for platform in gpu cpu; do
  if [ "$platform" = gpu ] && [ "$gpu" != 1 ]; then
    echo "(no GPU visible to JAX: GPU rows skipped)"
    continue
  fi
  for entry in "${runs[@]}"; do
    IFS='|' read -r name args count <<<"$entry"
    dir="$out/$name-$platform-$(echo "$args" | cksum | cut -c1-6)"
    # shellcheck disable=SC2086
    JAX_PLATFORMS=$([ "$platform" = gpu ] && echo cuda || echo cpu) timeout 150 python3 -m examples.$name $args --out "$dir" >"$dir.log" 2>&1
    rc=$?
    python3 - "$dir" "$name" "$platform" "$rc" "$count" <<'PY'
import json, pathlib, re, sys
d, name, platform, rc, count = sys.argv[1:]
log = pathlib.Path(d + ".log").read_text(errors="replace")
m = re.search(r"stepping on (.*)", log)
device = m.group(1).strip() if m else "?"
path = pathlib.Path(d) / "summary.json"
if rc != "0" or not path.exists():
    tail = log.strip().splitlines()[-1:] or ["(no output)"]
    print(f"{name:<10} {platform:<5} {device:<34} {'-':>10} {'-':>8} FAILED rc={rc}: {tail[0][:100]}")
else:
    summary = json.loads(path.read_text())
    steps = eval(count, {}, {"summary": summary})
    secs = summary["train_seconds"]
    print(f"{name:<10} {platform:<5} {device:<34} {steps / secs:10.0f} {secs:8.1f} ok")
PY
  done
done
# The device path's throughput: PPO with many environments, rollout and update in one compiled call per iteration.
for platform in gpu cpu; do
  if [ "$platform" = gpu ] && [ "$gpu" != 1 ]; then continue; fi
  echo "throughput on $platform:"
  JAX_PLATFORMS=$([ "$platform" = gpu ] && echo cuda || echo cpu) timeout 300 \
    python3 -m benchmarks.policy_gradient throughput --backends jax --num-envs "${NUM_ENVS:-65536}"
done
# A PPO population on the GPU (issue 27): 1,024 CartPole-v1 members in one compiled call; the table's last lines
# give the members solved, env steps per second over all members and the training seconds until all solved.
if [ "$gpu" = 1 ]; then
  echo "population of ${POPULATION:-1024} on the GPU:"
  start=$(date +%s)
  JAX_PLATFORMS=cuda timeout 420 python3 -m examples.ppo --population "${POPULATION:-1024}" --seed 7000 \
    --max-env-steps 200000 --eval-episodes 0 --no-gif --out "$out/population" 2>&1 | grep -E "members solved|best member"
  python3 - "$out/population/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"members solved {s['members_solved']}/{s['members']}; median env steps to solve {s['median_env_steps_to_solve']}; "
      f"all solved after {s['wall_seconds_to_all_solved']} s of training; {s['env_steps_per_second']:,.0f} env steps/s")
PY
  echo "wall $(($(date +%s) - start)) s (process, compiling included)"
fi
# The data-parallel code path on one GPU against the plain path (issue: overhead under 5 %).
if [ "$gpu" = 1 ] && [ -d "$mnist" ]; then
  echo "data-parallel path on one GPU:"
  JAX_PLATFORMS=cuda timeout 300 python3 -m benchmarks.parallel_step --data-dir "$mnist" --steps 200 --rounds 3
fi
# The image GAN, where the GPU already wins (issue 11): the default MNIST command whole (goal: under a minute,
# the quality figures as on the CPU), then steps per second at batch 64 and 256, float32 and mixed_bfloat16.
if [ "$gpu" = 1 ] && [ -d "$mnist" ]; then
  echo "default MNIST command on the GPU:"
  start=$(date +%s)
  JAX_PLATFORMS=cuda timeout 300 python3 -m examples.gan_images --data-dir "$mnist" \
    --classifier-cache "$out/cache" --out "$out/mnist-default" 2>&1 | grep -E "steps in|classifier|Frechet"
  echo "wall $(($(date +%s) - start)) s (includes training the quality classifier once)"
  for batch in 64 256; do
    for precision in float32 mixed_bfloat16; do
      JAX_PLATFORMS=cuda timeout 200 python3 -m benchmarks.gan_image_speed --data-dir "$mnist" --steps 100 \
        --rounds 2 --batch-size "$batch" --precision "$precision" | grep -E "^(device|pipeline)" \
        | sed "s/^/batch $batch $precision: /"
    done
  done
fi
echo "logs and summaries: $out"
