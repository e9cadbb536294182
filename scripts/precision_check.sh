#!/usr/bin/env bash
# Does bfloat16 training follow float32 training? Three short PAG-Net 4x runs on one thread:
# float32 and bfloat16 from the same seed (same initial weights, same crops), and float32 from
# another seed (the run-to-run noise to compare with). Prints the validation MAE of each at
# every 50 steps and the largest gaps (about 25 minutes here).
#
#   bash scripts/precision_check.sh DATA OUT        # DATA: .../middlebury30
set -euo pipefail
data=${1:?usage: $0 DATA OUT}
out=${2:?usage: $0 DATA OUT}
python=${PYTHON:-.venv/bin/python}
common=(--arch pag_net --scale 4 --data "$data" --steps 600 --save-every 50 --crop 64
        --batch-size 8 --lr 1e-3 --threads 1 --workers 1 --synthetic 0)
for run in float32:0 bfloat16:0 float32:1; do
  precision=${run%:*}
  seed=${run#*:}
  "$python" -m depth_sr_ros.cli.train "${common[@]}" --precision "$precision" --seed "$seed" \
    --out "$out/${precision}_seed$seed" > "$out.${precision}_seed$seed.log"
done
"$python" - "$out" <<'EOF'
import csv
import sys

out = sys.argv[1]
runs = ('float32_seed0', 'bfloat16_seed0', 'float32_seed1')
curves = {}
for run in runs:
    with open(f'{out}/{run}/log.csv') as f:
        curves[run] = {int(r['step']): float(r['val_mae']) for r in csv.DictReader(f)}
steps = sorted(set.intersection(*(set(c) for c in curves.values())))
print('| step | ' + ' | '.join(runs) + ' |')
print('|---' * (len(runs) + 1) + '|')
for step in steps:
    print(f'| {step} | ' + ' | '.join(f'{curves[r][step]:.3f}' for r in runs) + ' |')
precision_gap = max(abs(curves[runs[1]][s] - curves[runs[0]][s]) for s in steps)
seed_gap = max(abs(curves[runs[2]][s] - curves[runs[0]][s]) for s in steps)
print(f'\nlargest |bfloat16 - float32| (same seed): {precision_gap:.3f}; '
      f'largest |float32 seed 1 - seed 0|: {seed_gap:.3f}')
EOF
