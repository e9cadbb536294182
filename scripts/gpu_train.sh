#!/bin/bash
# Train the shipped models on one GPU, all runs side by side, in resumable segments.
#
# usage: scripts/gpu_train.sh DATA RUNS SECONDS [final]
#   DATA     a folder with depth/ and rgb/ (middlebury30)
#   RUNS     where each run keeps its state (run the same command again to resume)
#   SECONDS  training time of this segment, per run
#   final    size the runs so that they end with this segment: each run's total steps become
#            its steps so far plus what its measured rate gives in SECONDS, and the learning
#            rate is halved at 80 % of that total (the papers halve it late in training)
# environment: DEVICE (default cuda), TRAIN_ARGS (more depth_sr_train options for every run)
set -u
data=$1 runs=$2 budget=$3 final=${4:-}
mkdir -p "$runs"
jobs=(
  'ahmf_x4 --arch ahmf --scale 4'
  'ahmf_x4_synthetic --arch ahmf --scale 4 --synthetic 0.25'
  'ahmf_x8 --arch ahmf --scale 8'
  'ahmf_x16 --arch ahmf --scale 16'
  'pag_net_x4 --arch pag_net --scale 4'
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
    --time-budget "$budget" --device "${DEVICE:-cuda}" --workers 3 ${TRAIN_ARGS:-} \
    >> "$runs/$name.out" 2>&1 &
done
wait
tail -n 3 "$runs"/*.out
