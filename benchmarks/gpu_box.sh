#!/usr/bin/env bash
# Every GPU measurement of BENCHMARKS.md in one timed device session.
#
# Runs on the lent GPU box (JAX, no TensorFlow, no network) from the repo
# root, with the Keras wheels in .whl/ and the CIFAR-10 tarball in .data/
# (see "Recipe for the GPU box" in BENCHMARKS.md):
#
#   bash benchmarks/gpu_box.sh "$OUT" 570
#
# 1. CIFAR-10-LT, 200 epochs, dl2pa/etf/softmax, and low-dimensional
#    CIFAR-10 (d = 3), dl2pa/static: five processes at once on the GPU.
#    Every method stops at the last epoch that ends before TRAIN_SECONDS
#    (a result with `completed: false` says so).
# 2. Training-step overhead (bench_train_step.py, c = 1000 head and
#    ResNet-32) with the time that is left.
#
# Results, logs and per-epoch progress go to OUT_DIR, so a cut-off run
# still reports what it did. SMOKE=1 shrinks everything for a CPU check.
set -u
OUT=${1:?usage: gpu_box.sh OUT_DIR [SECONDS]}
BUDGET=${2:-570}
TRAIN_SECONDS=${TRAIN_SECONDS:-420}
PYTHON=${PYTHON:-python3}
START=$(date +%s)
mkdir -p "$OUT"

# keras, grain and their pure-Python dependencies (see BENCHMARKS.md).
"$PYTHON" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax
export XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
"$PYTHON" -c "import jax, keras; print('jax', jax.__version__, 'keras', \
keras.__version__, jax.devices())"

DATA=.data/cifar10-jpeg-train.tar.gz
LT_ARGS=()
LOW_ARGS=(--epochs 20)
BENCH_ARGS=(--steps 50 --repeats 5)
if [ "${SMOKE:-0}" = 1 ]; then
  LT_ARGS=(--quick --epochs 1)
  LOW_ARGS=(--quick --epochs 1)
  BENCH_ARGS=(--steps 3 --repeats 1)
fi
DEADLINE=$((START + TRAIN_SECONDS))

# The driver runs the recipes (one process per method) with the deadline;
# run directories go to .runs/, so a later call resumes them.
echo "== training (deadline in $((DEADLINE - $(date +%s))) s)"
"$PYTHON" benchmarks/gpu_cifar10_lt.py --data "$DATA" --runs-dir .runs \
  --deadline "$DEADLINE" "${LT_ARGS[@]}" \
  --out "$OUT/gpu_cifar10_lt.json" >"$OUT/lt.log" 2>&1 &
LT=$!
"$PYTHON" benchmarks/gpu_cifar10_lt.py --data "$DATA" --runs-dir .runs \
  --low-dim --dim 3 --deadline "$DEADLINE" "${LOW_ARGS[@]}" \
  --out "$OUT/gpu_cifar10_lowdim.json" >"$OUT/lowdim.log" 2>&1 &
LOW=$!
wait $LT; echo "long-tailed exit $?"; tail -8 "$OUT/lt.log"
wait $LOW; echo "low-dim exit $?"; tail -6 "$OUT/lowdim.log"

for CASE in head1000 resnet32; do
  LEFT=$((START + BUDGET - $(date +%s)))
  if [ "$LEFT" -lt 20 ]; then
    echo "== step benchmark $CASE skipped: ${LEFT} s left"
    continue
  fi
  echo "== step benchmark $CASE (${LEFT} s left)"
  PROFILE=()
  [ "$CASE" = head1000 ] && PROFILE=(--profile)
  timeout "$LEFT" "$PYTHON" benchmarks/bench_train_step.py --cases "$CASE" \
    --variants dl2pa,dl2pa_soft "${BENCH_ARGS[@]}" "${PROFILE[@]}" \
    --out "$OUT/train_step_jax_gpu_$CASE.json" >"$OUT/step_$CASE.log" 2>&1
  echo "exit $?"; tail -12 "$OUT/step_$CASE.log"
done
echo "== done in $(($(date +%s) - START)) s"
