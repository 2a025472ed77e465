#!/usr/bin/env bash
# The README's `pip install .` as a user gets it: build the wheel, install it alone (runtime dependencies only,
# no torch, no ONNX Runtime) into a fresh virtual environment, and run every command from outside the source
# tree. Fails if a subpackage is missing from the wheel, if a command cannot start, or if a command whose extra
# is missing says anything but one line naming the extra (exit 1).
#   .ci/wheel_check.sh            (from .ci/run, with the CI venv active; ~1-3 min, mostly the download)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$SECONDS

python -m pip wheel . --no-deps --quiet -w "$work/dist"
wheel=$(ls "$work"/dist/impeccable-*.whl)
# The listing goes to a file first: `grep -q` quits at the first match, and under pipefail the listing's broken
# pipe would fail the check on a long wheel.
python -m zipfile -l "$wheel" > "$work/listing.txt"
for pkg in impeccable/runtime/engines/__init__.py impeccable/models/unetpp-v2s-synth/model.onnx; do
  grep -q "$pkg" "$work/listing.txt" || { echo "wheel_check: $pkg is not in $(basename "$wheel")" >&2; exit 1; }
done

python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet "$wheel"
bin=$work/venv/bin
cd "$work"  # nothing of the source tree on sys.path: only the wheel's files can be imported
"$bin/python" - <<'PY'
import importlib.util, sys
present = [m for m in ("torch", "onnxruntime", "tensorrt") if importlib.util.find_spec(m)]
sys.exit(f"wheel_check: the base install pulled in {present}" if present else 0)
PY

expect_extra() {  # command... : exit 1 and exactly one stderr line that names the [train] extra
  local rc=0
  "$@" > out.txt 2> err.txt || rc=$?
  if [ "$rc" -ne 1 ] || [ "$(wc -l < err.txt)" -ne 1 ] || ! grep -q "Error: .*\[train\]" err.txt; then
    echo "wheel_check: '$*' should exit 1 with one line naming the [train] extra; got exit $rc:" >&2
    cat out.txt err.txt >&2
    exit 1
  fi
}

"$bin/impeccable-synth" demo --volumes 1 --shape 1259,8,32 --seed 3 --no-progress > /dev/null
id=$(basename "$(find demo -mindepth 1 -maxdepth 1 -type d | head -n 1)")
"$bin/impeccable-denoise" "demo/$id/seismic_w_noise_vol_$id.npy" -o denoised.npy --no-tta --no-progress
"$bin/impeccable-score" denoised.npy "demo/$id/seismicCubes_RFC_fullstack_2023.$id.npy"
for cmd in denoise synth score export train; do  # every --help works without its extra
  "$bin/impeccable-$cmd" --help > /dev/null
done
expect_extra "$bin/impeccable-train" --synthetic 2 --out runs/x
model=$("$bin/python" -c "from impeccable.models import DEFAULT_MODEL_DIR; print(DEFAULT_MODEL_DIR)")
mkdir weights-only && cp "$model/model.json" "$model/model.safetensors" weights-only/
expect_extra "$bin/impeccable-export" weights-only
cd "$root"
echo "wheel_check: passed in $((SECONDS - started)) s ($(basename "$wheel"), no torch, no onnxruntime)"
