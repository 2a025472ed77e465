#!/bin/bash
# Candidate v14: the trainer's best-validation model dir (/work/runs/v14), packaged with the shipped card's output guard,
# then the field benchmark and the 32 synthetic volumes through OpenVINO fp32 (the shipped model's figures are in
# benchmarks/results/2026-12-07-guard-defaults/{field-ship.json,quality-ship-openvino-fp32.json}, same engine).
set -e
cd /work/main; . .venv/bin/activate
E=/work/runs/eval14
rm -rf $E/cand $E/ship; mkdir -p $E/cand
cp /work/runs/v14/model.json /work/runs/v14/model.safetensors $E/cand/
python - <<'P'
import json
c = json.load(open('/work/runs/eval14/cand/model.json')); s = json.load(open('/work/main/models/unetpp-v2s-synth/model.json'))
c['output_guard'] = s['output_guard']
json.dump(c, open('/work/runs/eval14/cand/model.json', 'w'), indent=2)
print('candidate', c['metrics'])
P
python -m impeccable.export.ship $E/cand $E/ship unetpp-v2s-synth 2>&1 | tail -2
python -m impeccable.benchmarks.field --model $E/ship --engine openvino --out $E/field > $E/field.log 2>&1
grep -v "^ *$" $E/field.log | tail -25
python -m impeccable.benchmarks.quality --model $E/ship --engines openvino --volumes 8 --families a,b --levels moderate,strong \
  --no-baselines --json $E/quality-v14-openvino-fp32.json --markdown $E/quality-v14-openvino-fp32.md > $E/quality.log 2>&1
python benchmarks/results/2026-12-07-ship-v12/compare_quality.py benchmarks/results/2026-12-07-guard-defaults/quality-ship-openvino-fp32.json \
  $E/quality-v14-openvino-fp32.json "v12 (session-19 card)" "v14" openvino > $E/v12-vs-v14.md
cat $E/v12-vs-v14.md
