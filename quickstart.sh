#!/usr/bin/env bash
# The Quickstart's main job, on a fresh clone: install the torch-free runtime, make a small synthetic survey,
# denoise it with the shipped model through the fastest installed engine, write the denoised volume and a
# preview PNG, and print the challenge score before and after.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/impeccable-denoise ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet .   # the runtime with OpenVINO, as the README's Install: no torch
fi
# shellcheck disable=SC1091
. .venv/bin/activate

out=demo
impeccable-synth "$out" --volumes 1 --shape 1259,48,128 --seed 2026 --no-progress > /dev/null
id=$(basename "$(find "$out" -mindepth 1 -maxdepth 1 -type d | sort | head -n 1)")
noisy="$out/$id/seismic_w_noise_vol_$id.npy"
clean="$out/$id/seismicCubes_RFC_fullstack_2023.$id.npy"

time impeccable-denoise "$noisy" -o "$out/denoised.npy" --preview "$out/preview.png" --overwrite

before=$(impeccable-score "$noisy" "$clean" | awk '{print $2}')
after=$(impeccable-score "$out/denoised.npy" "$clean" | awk '{print $2}')
echo "challenge score (SSIM on uint8 sections) of volume $id: noisy $before -> denoised $after"
echo "denoised volume: $out/denoised.npy   preview: $out/preview.png"
