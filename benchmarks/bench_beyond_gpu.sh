#!/usr/bin/env bash
# Issue 16's GPU figures: global localisation, tracking, uncertainty calibration on the shared chair and on a
# generated scene (the demo's duck run + .carry/gen). Run from the repo root (PYTHONPATH set by the caller):
#     bash .carry/call_beyond.sh GPU_INDEX OUT_DIR     (tracked copy: benchmarks/bench_beyond_gpu.sh)
# Five parts, each its own process under `timeout` (limits sum to 470 s), each with its log OUT_DIR/<part>.log;
# results in OUT_DIR/<part>/ (beyond.json, BEYOND.md, reports, figures in fig/), a digest in OUT_DIR/summary.md.
# BEYOND_TINY=1: the same command lines with tiny counts on the CPU (the check made before the GPU run).
# .carry/gen: inerf synth scene --asset duck --out .carry/gen --size 200 --train 100 --val 0 --test 20 --seed 0 \
#     --path handheld --frames 200   (the demo run's scene: same seed, size, radius; test = its held-out views)
set -u
GPU=${1:?usage: call_beyond.sh GPU_INDEX OUT_DIR}
OUT=${2:?usage: call_beyond.sh GPU_INDEX OUT_DIR}
PY=${PYTHON:-python3}
CARRY=${CARRY:-.carry}
mkdir -p "$OUT"
export CUDA_VISIBLE_DEVICES=$GPU PYTHONUNBUFFERED=1
B="benchmarks/bench_beyond.py"

# GPU settings (see the report of branch beyondgpu for why):
DEV=cuda
G_IMG=10; G_TR=2; G_STEPS=300; G_RAYS=2048; G_KEEP=8; G_VP=256; G_LMAVG=16; WARM=--warmup
C_IMG=5; C_TR=5; C_STEPS=300
T_FRAMES=200; T_RAYS=2048; T_SECONDS=55
CHAIR_SAMPLES=256
L_CG=${L_CG:-115}; L_CC=${L_CC:-90}; L_GG=${L_GG:-100}; L_GT=${L_GT:-90}; L_GC=${L_GC:-75}
if [ "${BEYOND_TINY:-0}" = 1 ]; then
  DEV=cpu
  G_IMG=1; G_TR=1; G_STEPS=8; G_RAYS=64; G_KEEP=2; G_VP=16; G_LMAVG=2
  C_IMG=1; C_TR=1; C_STEPS=8
  T_FRAMES=10; T_RAYS=128; T_SECONDS=600
  CHAIR_SAMPLES=32
  L_CG=900; L_CC=900; L_GG=900; L_GT=900; L_GC=900
fi

GLOBAL="--images $G_IMG --trials $G_TR --viewpoints $G_VP --rolls 1 --keep $G_KEEP --score-rays 256 --score-size 32 \
 --steps $G_STEPS --rays $G_RAYS --lm-average $G_LMAVG $WARM"
CALIB="--calib-images $C_IMG --calib-trials $C_TR --calib-steps $C_STEPS --perturb-rot 40 --perturb-trans 0.1"
CHAIR="--run $CARRY/chair_grid --data $CARRY/chair --split test --samples $CHAIR_SAMPLES --device $DEV"
GEN="--run inerf/assets/demo/run --data $CARRY/gen --split test --device $DEV"

part() {  # NAME LIMIT ARGS...: one part, its log, its exit status (PARTS="a b": only those parts)
  local name=$1 limit=$2; shift 2
  case " ${PARTS:-$name} " in *" $name "*) ;; *) return 0 ;; esac
  local t0=$(date +%s)
  echo "== $name (limit ${limit} s) $(date +%T)"
  timeout -k 10 "$limit" "$PY" "$B" "$@" --out "$OUT/$name" --figures "$OUT/$name/fig" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name: rc $rc, $(( $(date +%s) - t0 )) s" | tee -a "$OUT/status.txt"
}

part chair_global "$L_CG" $CHAIR --skip track,calibration $GLOBAL
part chair_calib "$L_CC" $CHAIR --skip global,track $CALIB
part gen_global "$L_GG" $GEN --skip track,calibration $GLOBAL
part gen_track "$L_GT" $GEN --skip global,calibration --sequence "$CARRY/gen" --track-frames $T_FRAMES \
  --track-rays $T_RAYS --track-seconds $T_SECONDS --scene-radius 1.0
part gen_calib "$L_GC" $GEN --skip global,track $CALIB

{
  for p in chair_global chair_calib gen_global gen_track gen_calib; do
    echo "# $p"
    if [ -f "$OUT/$p/BEYOND.md" ]; then cat "$OUT/$p/BEYOND.md"; else echo "(no BEYOND.md: see $p.log)"; tail -5 "$OUT/$p.log"; fi
    echo
  done
  cat "$OUT/status.txt"
} > "$OUT/summary.md"
grep -h "success\*\*\|frames/s\|inside 95\|robust |\|Wall time" "$OUT"/*/BEYOND.md 2>/dev/null | cut -c1-400
cat "$OUT/status.txt"
