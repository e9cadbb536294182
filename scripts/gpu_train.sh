#!/bin/bash
# Train the shipped models on one GPU, all runs side by side, in resumable segments.
#
# usage: scripts/gpu_train.sh DATA RUNS SECONDS [final]
#   DATA     a folder with depth/ and rgb/ (middlebury30)
#   RUNS     where each run keeps its state (run the same command again to resume)
#   SECONDS  training time of this segment, per run
#   final    size the runs so that they end with this segment: each run's total steps become
#            its steps so far plus what its measured rate gives in SECONDS, and the learning
#            rate is halved at 70 % of that total
# environment: DEVICE (default cuda), TRAIN_ARGS (more depth_sr_train options for every run)
set -u
data=$1 runs=$2 budget=$3 final=${4:-}
models=$(cd "$(dirname "$0")/../models" && pwd)
# 'point', not 'nearest': nearest's top-left samples taught the first H100 files a sub-pixel
# shift (docs/training.md, "The nearest kernel shifted the files trained on the mix")
mix=bicubic,antialiased,area,point
mkdir -p "$runs"
# Each run fine-tunes a shipped file (PAG-Net 16x grows from the 8x one), with 256x256 crops,
# batch 8, a quarter synthetic scenes and learning rate 1e-4 halved at 70 % of the steps.
# AHMF trains on the papers' bicubic degradation and, separately, on the four-kernel mix.
jobs=(
  "ahmf_x4_clean --arch ahmf --scale 4 --init $models/ahmf_x4.pt --downsampling bicubic"
  "ahmf_x8_clean --arch ahmf --scale 8 --init $models/ahmf_x8.pt --downsampling bicubic"
  "ahmf_x16_clean --arch ahmf --scale 16 --init $models/ahmf_x16.pt --downsampling bicubic"
  "ahmf_x4_mix --arch ahmf --scale 4 --init $models/ahmf_x4.pt --downsampling $mix"
  "ahmf_x8_mix --arch ahmf --scale 8 --init $models/ahmf_x8.pt --downsampling $mix"
  "ahmf_x16_mix --arch ahmf --scale 16 --init $models/ahmf_x16.pt --downsampling $mix"
  "pag_net_x2 --arch pag_net --scale 2 --init $models/pag_net_x2.pt --downsampling $mix"
  "pag_net_x4 --arch pag_net --scale 4 --init $models/pag_net_x4.pt --downsampling $mix"
  "pag_net_x8 --arch pag_net --scale 8 --init $models/pag_net_x8.pt --downsampling $mix"
  "pag_net_x16 --arch pag_net --scale 16 --init $models/pag_net_x8.pt --downsampling $mix"
)
for job in "${jobs[@]}"; do
  set -- $job
  name=$1
  shift
  steps=1000000
  if [ -n "$final" ] && [ -f "$runs/$name/log.csv" ]; then
    steps=$(python3 - "$runs/$name/log.csv" "$budget" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
if not rows:
    print(1000000)  # nothing logged yet: no rate to size the run by
else:
    step, elapsed = int(rows[-1]['step']), float(rows[-1]['elapsed_s'])
    print(step + int(step / max(elapsed, 1e-3) * float(sys.argv[2])))
PY
)
  fi
  python3 -m depth_sr_ros.cli.train "$@" --data "$data" --out "$runs/$name" --steps "$steps" \
    --time-budget "$budget" --device "${DEVICE:-cuda}" --crop 256 --batch-size 8 \
    --synthetic 0.25 --lr 1e-4 --lr-halve-at 0.7 --save-every 250 --workers 1 --threads 2 \
    ${TRAIN_ARGS:-} \
    >> "$runs/$name.out" 2>&1 &
done
wait
tail -n 3 "$runs"/*.out
