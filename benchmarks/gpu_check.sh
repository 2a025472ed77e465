#!/usr/bin/env bash
# Everything a GPU machine must show, in one run, with the results under benchmarks/results/<date>-gpu-check-<gpu>/:
#   1. the GPU tests (pytest -m gpu), with the reason for every skip;
#   2. the FP16 export of the model and its TensorRT plan (impeccable-export --fp16, the plan checked against
#      the float32 graph before it is kept);
#   3. parity of the denoised field against torch fp32 (on the CPU, the parity tests' reference) at batch 1 and
#      8 with flip TTA: TensorRT fp16, ONNX Runtime CUDA fp32 and fp16, torch bf16 on CUDA;
#   4. the GPU throughput table (python -m impeccable.benchmarks.throughput).
# What cannot run here (no TensorRT, no onnxruntime-gpu, no torch with CUDA) is skipped and named in summary.md;
# the rest still runs. Needs: pip install '.[gpu,train,dev]' (CUDA 13 driver) with torch built for CUDA.
#   benchmarks/gpu_check.sh [MODEL_DIR]     (default: a copy of the shipped model; SECTIONS=16 by default)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
sections=${SECTIONS:-16}

py() { python - "$@"; }
if ! command -v nvidia-smi > /dev/null && [ -z "${GPU_CHECK_ANYWAY:-}" ]; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi not found); nothing to check" >&2
  exit 1
fi
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2> /dev/null | head -n 1 || true)
slug=$(echo "${gpu:-no-gpu}" | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9]\+/-/g; s/^-//; s/-$//')
out=$root/benchmarks/results/$(date +%F)-gpu-check-$slug
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
summary=$out/summary.md
echo "# GPU check, $(date -u +%FT%TZ), ${gpu:-no GPU}" > "$summary"
ran() { echo "- ran: $*" | tee -a "$summary"; }
skipped() { echo "- SKIPPED: $*" | tee -a "$summary"; }
failed() { echo "- FAILED: $*" | tee -a "$summary"; status=1; }
status=0

# What is here, decided once (each probe imports only what it names).
have() { python -c "$1" > /dev/null 2>&1; }
have "import torch, sys; sys.exit(not torch.cuda.is_available())" && torch_cuda=1 || torch_cuda=
have "import impeccable.runtime.engines as e, sys; sys.exit(not e.installed('tensorrt'))" && trt=1 || trt=
have "import impeccable.runtime.engines as e, sys; sys.exit(not e.ort_has_cuda())" && ort_cuda=1 || ort_cuda=
have "import torch" && torch_any=1 || torch_any=
{ nvidia-smi 2>&1 || true; python -m pip list 2>/dev/null | grep -iE "^(torch|tensorrt|onnxruntime|polygraphy|cuda|nvidia|openvino) " ; } > "$out/environment.txt"
ran "environment: environment.txt (torch CUDA ${torch_cuda:-no}, TensorRT ${trt:-no}, ORT CUDA provider ${ort_cuda:-no})"

# 1. The GPU tests.
if python -m pytest -m gpu -q -rs -p no:cacheprovider > "$out/pytest-gpu.log" 2>&1; then
  ran "pytest -m gpu: $(tail -n 1 "$out/pytest-gpu.log") (skips and their reasons in pytest-gpu.log)"
else
  failed "pytest -m gpu: $(tail -n 1 "$out/pytest-gpu.log") (pytest-gpu.log)"
fi

# 2. The FP16 export and the TensorRT plan, on a copy (the plan and its timing cache are build outputs).
src=${1:-$(python -c "from impeccable.models import DEFAULT_MODEL_DIR; print(DEFAULT_MODEL_DIR)")}
model=$work/model
cp -r "$src" "$model"
if [ -z "$torch_any" ]; then
  skipped "FP16 export and plan build: torch is not installed (pip install '.[train]')"
else
  rc=0
  impeccable-export "$model" --fp16 --batch 16 --max-batch 32 > "$out/export.log" 2>&1 || rc=$?
  case $rc in
    0) ran "impeccable-export --fp16: model.fp16.onnx and $(cd "$model" && ls ./*.plan 2> /dev/null | xargs -n1 basename) (export.log)"
       cp "$model"/*.plan.json "$out/" 2> /dev/null || true ;;
    2) ran "impeccable-export --fp16: model.fp16.onnx (export.log)"
       skipped "TensorRT plan build: $(sed -n 's/^Error: no TensorRT plan built: \([^|]*\) |.*/\1/p' "$out/export.log")" ;;
    *) failed "impeccable-export --fp16 exit $rc: $(tail -n 1 "$out/export.log")" ;;
  esac
fi

# 3. Parity of the denoised field, whole volume through impeccable-denoise, batch 1 and 8, flip TTA on.
python -m impeccable.benchmarks.throughput --help > /dev/null  # fails early if the package is broken
py "$work/volume.npy" "$sections" <<'PY'
import sys
from pathlib import Path
from impeccable.benchmarks.throughput import make_volume
make_volume(Path(sys.argv[1]), int(sys.argv[2]))
PY
denoise() {  # name engine precision batch -> $work/<name>-<batch>.npy
  local name=$1 engine=$2 precision=$3 batch=$4
  local args=(--engine "$engine" --batch-size "$batch" --tta --scale unit --overwrite --no-progress)
  [ -n "$precision" ] && args+=(--precision "$precision")
  impeccable-denoise "$work/volume.npy" -o "$work/$name-$batch.npy" --model "$model" "${args[@]}" \
    >> "$out/parity-runs.log" 2>&1
}
outputs=()
if [ -z "$torch_any" ]; then
  skipped "parity: no torch fp32 reference (pip install '.[train]')"
else
  CUDA_VISIBLE_DEVICES="" denoise reference torch fp32 8 || failed "torch fp32 reference (parity-runs.log)"
  cases=()
  if [ -z "$trt" ]; then skipped "TensorRT parity: tensorrt not installed"
  elif ! ls "$model"/*.plan > /dev/null 2>&1; then skipped "TensorRT parity: no plan was built (export.log)"
  else cases+=("tensorrt tensorrt fp16"); fi
  if [ -n "$ort_cuda" ]; then
    cases+=("onnxruntime-cuda onnxruntime fp32")
    if [ -f "$model/model.fp16.onnx" ]; then cases+=("onnxruntime-cuda onnxruntime fp16"); else
      skipped "ONNX Runtime CUDA fp16 parity: no model.fp16.onnx (the export above did not write it)"; fi
  else
    skipped "ONNX Runtime CUDA parity: no CUDA provider (pip install '.[gpu]' without [cpu])"
    [ -f "$model/model.fp16.onnx" ] && cases+=("onnxruntime-cpu onnxruntime fp16")  # the FP16 graph vs torch
  fi
  if [ -n "$torch_cuda" ]; then cases+=("torch-cuda torch bf16"); else skipped "torch bf16 parity: torch has no CUDA"; fi
  for case in "${cases[@]}"; do
    read -r name engine precision <<< "$case"
    for batch in 1 8; do
      if denoise "$name-$precision" "$engine" "$precision" "$batch"; then
        outputs+=("$name:$precision:$batch=$work/$name-$precision-$batch.npy")
      else
        failed "$name $precision batch $batch (parity-runs.log)"
      fi
    done
  done
  if [ ${#outputs[@]} -gt 0 ] && [ -f "$work/reference-8.npy" ]; then
    if python -m impeccable.benchmarks.parity "$work/reference-8.npy" "${outputs[@]}" \
        --json "$out/parity.json" --markdown "$out/parity.md" > /dev/null 2> "$out/parity.err"; then
      ran "parity against torch fp32, batch 1 and 8, TTA on: every case within its bound (parity.md)"
      rm -f "$out/parity.err"
    else
      failed "parity: a case misses its bound or the comparison failed (parity.md, parity.err)"
    fi
  fi
fi

# 4. GPU throughput, every GPU engine available here, batch 1 and 8.
engines=()
[ -n "$torch_cuda" ] && engines+=("torch:bf16@cuda")
[ -n "$ort_cuda" ] && engines+=("onnxruntime:fp32@cuda")
[ -n "$ort_cuda" ] && [ -f "$model/model.fp16.onnx" ] && engines+=("onnxruntime:fp16@cuda")
[ -n "$trt" ] && ls "$model"/*.plan > /dev/null 2>&1 && engines+=("tensorrt")
if [ ${#engines[@]} -eq 0 ]; then
  skipped "GPU throughput: no GPU engine here"
else
  list=$(IFS=,; echo "${engines[*]}")
  if python -m impeccable.benchmarks.throughput --model "$model" --engines "$list" --sections "$sections" \
      --batch-size 1,8 --repeats 10 --json "$out/throughput.json" --markdown "$out/throughput.md" \
      > "$out/throughput.log" 2>&1; then
    ran "throughput of $list (throughput.md)"
  else
    failed "throughput (throughput.log)"
  fi
fi

echo "gpu_check: results in ${out#"$root"/}" | tee -a "$summary"
exit $status
