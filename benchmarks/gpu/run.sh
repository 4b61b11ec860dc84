#!/usr/bin/env bash
# The GPU campaign, one device call: Table 4's 0.01 column (or the cells
# chosen below) from the prepared splits, every result back in OUT.
#
# On the box, from the repo root, after benchmarks/gpu/prepare.sh here
# (carry [".campaign"], timeout_s 600):
#
#   bash benchmarks/gpu/run.sh "$OUT" 570
#
# 1. installs the carried wheels (.campaign/wheels) with --target;
# 2. checks that JAX sees a GPU (JAX_PLATFORMS=cuda fails at once);
# 3. checks the prepared data against .campaign/SHA256SUMS;
# 4. runs `keras-dlpa reproduce --grid table4` on the chosen cells, all at
#    once, with one deadline (BUDGET - RESERVE seconds after the start:
#    each run stops after its last epoch that fits, says
#    `completed: false` if it had to, and still writes its results);
# 5. packs report, logs, per-run metrics/evaluation/config and every
#    model.keras into OUT (benchmarks/gpu/pack.py: at most 8 files of
#    15 MiB).
#
# Settings (environment): IMBALANCE (0.01), DIMS, METHODS (all), SEED (0),
# PARALLEL (4), EPOCHS (the recipe's 200), RESERVE (60 s for evaluation
# and packing), PRECISION (float32), CHECKPOINT_EVERY (50), CAMPAIGN
# (.campaign), PYTHON (python3). REHEARSAL=1 is the CPU rehearsal (tests/test_gpu_campaign.py):
# JAX on CPU, --quick, 1 epoch, 2 runs at a time.
set -u
OUT=${1:?usage: run.sh OUT_DIR [SECONDS]}
BUDGET=${2:-570}
START=$(date +%s)
PYTHON=${PYTHON:-python3}
CAMPAIGN=${CAMPAIGN:-.campaign}
IMBALANCE=${IMBALANCE:-0.01}
SEED=${SEED:-0}
PARALLEL=${PARALLEL:-4}
RESERVE=${RESERVE:-60}
PRECISION=${PRECISION:-float32}
QUICK=()
if [ "${REHEARSAL:-0}" = 1 ]; then
  export JAX_PLATFORMS=cpu
  QUICK=(--quick)
  EPOCHS=${EPOCHS:-1}
  PARALLEL=${PARALLEL_REHEARSAL:-2}
fi
export JAX_PLATFORMS=${JAX_PLATFORMS:-cuda}
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false
mkdir -p "$OUT"
exec > >(tee "$OUT/campaign.log") 2>&1
echo "== campaign: imbalance $IMBALANCE, seed $SEED, budget $BUDGET s"

if compgen -G "$CAMPAIGN/wheels/*.whl" >/dev/null; then
  SITE=$(mktemp -d)
  "$PYTHON" -m pip install -q --no-index --no-deps --target "$SITE" \
    "$CAMPAIGN"/wheels/*.whl || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "no wheels in $CAMPAIGN/wheels: using the installed packages"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

"$PYTHON" -c "import jax, keras; print('jax', jax.__version__, 'keras', \
keras.__version__, jax.devices())" || {
  echo "JAX sees no $JAX_PLATFORMS device: stopping before any run"; exit 1; }

DATA="$CAMPAIGN/data/cifar100_lt-$IMBALANCE-s$SEED.npz"
(cd "$CAMPAIGN" && sha256sum --quiet -c SHA256SUMS) || {
  echo "prepared data missing or damaged (run prepare.sh again)"; exit 1; }

SELECT=(--imbalance "$IMBALANCE" --seeds "$SEED")
[ -n "${DIMS:-}" ] && SELECT+=(--dims "$DIMS")
[ -n "${METHODS:-}" ] && SELECT+=(--methods "$METHODS")
[ -n "${EPOCHS:-}" ] && SELECT+=(--epochs "$EPOCHS")
[ "$PRECISION" != float32 ] && SELECT+=(--precision "$PRECISION")
# Checkpoints cannot outlive the box (they do not come back), so only
# every CHECKPOINT_EVERY epochs and the last (bench_fit_budget.py).
SELECT+=(--checkpoint-every "${CHECKPOINT_EVERY:-50}")
SWEEP=$(mktemp -d)/table4
DEADLINE=$((START + BUDGET - RESERVE))
echo "== training until $(date -d "@$DEADLINE" +%T) ($((DEADLINE - $(date +%s))) s)"
"$PYTHON" -m keras_dlpa reproduce --grid table4 --data "$DATA" \
  "${SELECT[@]}" "${QUICK[@]}" --parallel "$PARALLEL" \
  --deadline "$DEADLINE" --out "$SWEEP"
RUNS=$?
echo "reproduce exit $RUNS"
cat "$SWEEP/report.md" 2>/dev/null
"$PYTHON" benchmarks/gpu/pack.py "$SWEEP" "$OUT"
PACKED=$?
echo "== done in $(($(date +%s) - START)) s"
# Failed runs (1) or results that do not fit (1) fail the call; runs
# stopped by the deadline do not (their report says completed: false).
[ "$RUNS" = 0 ] && exit $PACKED
exit $RUNS
