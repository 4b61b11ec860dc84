#!/usr/bin/env bash
# Prepares the GPU campaign on a developer machine (network for the
# wheels): .campaign/ with the wheels of wheels.txt, the prepared splits
# of the cells and their checksums; checks that one device call can carry
# them (64 MiB with the tracked files) and prints that call.
#
#   KERAS_DLPA_DATA=../shared/data bash benchmarks/gpu/prepare.sh  # Table 4, 0.01
#   ARCHIVE=X.tar.gz IMBALANCE=0.02 bash benchmarks/gpu/prepare.sh
#
# REHEARSAL=1 (tests/test_gpu_campaign.py): no wheels (the test's own
# environment stands in for them; the test checks wheels.txt against the
# modules the rehearsal loads), the splits of the --quick runs.
set -euo pipefail
CAMPAIGN=${CAMPAIGN:-.campaign}
IMBALANCE=${IMBALANCE:-0.01}
SEED=${SEED:-0}
PYTHON=${PYTHON:-python}
# The CIFAR-100 archive: ARCHIVE, else the one in the folder KERAS_DLPA_DATA.
ARCHIVE=${ARCHIVE:-${KERAS_DLPA_DATA:?set ARCHIVE or KERAS_DLPA_DATA}/cifar100-png-train.tar.gz}
HERE=$(dirname "$0")
# The splits are numpy work; JAX keeps TensorFlow out of the process.
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
QUICK=()
[ "${REHEARSAL:-0}" = 1 ] && QUICK=(--quick)
mkdir -p "$CAMPAIGN/data"

if [ "${REHEARSAL:-0}" != 1 ]; then
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$CAMPAIGN/wheels" \
    -r "$HERE/wheels.txt"
fi

NAME="cifar100_lt-$IMBALANCE-s$SEED.npz"
"$PYTHON" "$HERE/prepare_data.py" --image-dir "$ARCHIVE" \
  --imbalance "$IMBALANCE" --seed "$SEED" "${QUICK[@]}" \
  --npz-out "$CAMPAIGN/data/$NAME"
(cd "$CAMPAIGN" && sha256sum data/*.npz > SHA256SUMS)

# One call carries the tracked files and .campaign: at most 64 MiB.
TRACKED=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null |
  awk '{s += $1} END {print s + 0}')
CARRIED=$(du -sb "$CAMPAIGN" | cut -f1)
TOTAL=$((TRACKED + CARRIED))
echo "carried: $((TOTAL / 1048576)) MiB (tracked $((TRACKED / 1048576)), $CAMPAIGN $((CARRIED / 1048576)))"
if [ "$TOTAL" -gt $((64 * 1048576)) ]; then
  echo "over the 64 MiB a device call carries: drop cells or wheels" >&2
  exit 1
fi
echo "device call: run(command='bash benchmarks/gpu/run.sh \"\$OUT\" 570'," \
  "carry=['$CAMPAIGN'], timeout_s=600)"
