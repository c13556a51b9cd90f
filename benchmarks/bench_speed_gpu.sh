#!/usr/bin/env bash
# Issue 12's GPU figures in one call (run from the repo root, PYTHONPATH set by the caller):
#     bash benchmarks/bench_speed_gpu.sh GPU_INDEX OUT_DIR GRID_RUN CHAIR_DATA
# 1. the grid field (GRID_RUN, e.g. .carry/chair_grid): the fast path and its ablations
#    (fast-slots: compositing in the [rays, budget] layout, not in the pool; fast-novmkernel: no factor kernel;
#    fast-all: the factor kernel for every query, and RenderConfig.deterministic) against the reference,
#    64 hypotheses x 300 steps included;
# 2. pixelNeRF srn: fast against reference (step, solve, renders);
# 3. the pose protocol on the chair (robust preset, 5 views x 5 trials, random sampling), fast path.
# Each part runs under `timeout` (limits sum to 530 s) with its log OUT_DIR/<part>.log; JSON and the
# protocol's report in OUT_DIR, the tables in OUT_DIR/summary.md.
# SPEED_TINY=1: the same command lines with tiny counts on the CPU (the check made before the GPU run).
set -u
GPU=${1:?usage: bench_speed_gpu.sh GPU_INDEX OUT_DIR GRID_RUN CHAIR_DATA}
OUT=${2:?usage: bench_speed_gpu.sh GPU_INDEX OUT_DIR GRID_RUN CHAIR_DATA}
RUN=${3:?usage: bench_speed_gpu.sh GPU_INDEX OUT_DIR GRID_RUN CHAIR_DATA}
DATA=${4:?usage: bench_speed_gpu.sh GPU_INDEX OUT_DIR GRID_RUN CHAIR_DATA}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export CUDA_VISIBLE_DEVICES=$GPU PYTHONUNBUFFERED=1

DEV=cuda; STEPS=300; HYP=64; RAYS="1024 2048"; P_IMG=5; P_TR=5; P_STEPS=300; CHECKS=50,100,200,300; SCALE=1
L_GRID=${L_GRID:-260}; L_PX=${L_PX:-200}; L_PROTO=${L_PROTO:-70}
if [ "${SPEED_TINY:-0}" = 1 ]; then
  DEV=cpu; STEPS=4; HYP=2; RAYS=64; P_IMG=1; P_TR=1; P_STEPS=4; CHECKS=2,4; SCALE=0.1
  L_GRID=900; L_PX=900; L_PROTO=900
fi

timeout "$L_GRID" $PY benchmarks/bench_pose_speed.py --device $DEV --scale $SCALE --models grid --grid-run "$RUN" \
  --paths fast fast-slots fast-novmkernel fast-all reference --rays $RAYS --hypotheses $HYP --steps $STEPS \
  --out "$OUT/speed_grid.json" > "$OUT/grid.log" 2>&1
echo "grid rc $?"
timeout "$L_PX" $PY benchmarks/bench_pose_speed.py --device $DEV --scale $SCALE --models pixelnerf \
  --paths fast reference --rays $RAYS --hypotheses 0 --steps $STEPS --out "$OUT/speed_pixelnerf.json" \
  > "$OUT/pixelnerf.log" 2>&1
echo "pixelnerf rc $?"
timeout "$L_PROTO" $PY -m inerf.cli.main benchmark pose --run "$RUN" --data "$DATA" --split test \
  --images $P_IMG --trials $P_TR --perturb-rot 40 --perturb-trans 0.1 --rot-thresh 5 --trans-thresh 0.05 \
  --checkpoints $CHECKS --sampling random --steps $P_STEPS --rays 2048 --seed 0 --preset robust \
  --samples 256 --device $DEV --quiet --out "$OUT/protocol" --overwrite > "$OUT/protocol.log" 2>&1
echo "protocol rc $?"
{
  echo "# Issue 12, $(date +%F)"
  grep -h -A12 "^| model" "$OUT/grid.log" "$OUT/pixelnerf.log" | grep "^|"
  echo
  head -8 "$OUT/protocol/results.md" 2>/dev/null
} > "$OUT/summary.md"
cat "$OUT/summary.md"
