#!/usr/bin/env bash
# The iNeRF pose-estimation protocol (Yen-Chen et al., IROS 2021, Sec. V-A) on the shared chair scene.
#
# What it measures: for 5 test views x 5 random starts (rotation about a uniformly random axis by an angle
# uniform in [-40, 40] degrees about the world origin, translation uniform in [-0.1, 0.1] per axis), the
# fraction of trials whose pose after 50/100/200/300 Adam steps is within 5 degrees and 0.05 scene units of
# the ground truth, for random, interest-point and interest-region sampling (2048 rays per step, lr 0.01
# decayed x0.8 per 100 steps: the paper's settings). The 5 trials of a view run as one batched solve.
# Then the same with coarse-to-fine blur + Levenberg-Marquardt (ROBUST), and the Parallel-iNeRF-style
# experiment: starts up to +-80 degrees / +-0.3, 16 hypotheses per trial.
#
# Usage:   benchmarks/bench_pose_protocol.sh RUN_DIR [OUT_DIR] [extra flags for every run]
#   RUN_DIR  a run trained on the chair scene, e.g.
#            inerf train --data /work/shared/scenes/chair --out runs/chair --model grid --max-minutes 6.5
# Measured figures (H100, grid chair field, --samples 256): BENCHMARKS.md. Extra flags go to every run
# (e.g. --device cuda --samples 256).
# Writes OUT_DIR/paper/, OUT_DIR/robust/ and OUT_DIR/hypotheses16/: results.md (table), results.csv, trials.csv,
# results.json (everything, per-trial poses included) and success_curve.png.
set -euo pipefail
RUN=${1:?usage: $0 RUN_DIR [OUT_DIR] [extra flags]}
OUT=${2:-outputs/bench_pose_protocol}
shift $(( $# >= 2 ? 2 : 1 ))
INERF=${INERF:-inerf}
DATA=${DATA:-/work/shared/scenes/chair}

# 1. The paper's protocol.
$INERF benchmark pose --run "$RUN" --data "$DATA" --split test --images 5 --trials 5 \
    --perturb-rot 40 --perturb-trans 0.1 --rot-thresh 5 --trans-thresh 0.05 --checkpoints 50,100,200,300 \
    --sampling random,interest_points,interest_region --steps 300 --rays 2048 --lr 0.01 --seed 0 \
    --out "$OUT/paper" --overwrite "$@"

# 2. The same starts with coarse-to-fine blur and a Levenberg-Marquardt finish (inerf.pose.config.ROBUST).
$INERF benchmark pose --run "$RUN" --data "$DATA" --split test --images 5 --trials 5 \
    --perturb-rot 40 --perturb-trans 0.1 --rot-thresh 5 --trans-thresh 0.05 --checkpoints 50,100,200,250,300 \
    --sampling random,interest_points,interest_region --steps 300 --rays 2048 --seed 0 \
    --optimizer adam+lm --lm-steps 50 --blur 8 --blur-steps 100 --blur-rays 4 \
    --out "$OUT/robust" --overwrite "$@"

# 3. Larger starts with 16 hypotheses per trial (the extra hypotheses spread over the same ranges), blur
#    12 px, the worse half dropped at steps 60 and 120 (4 hypotheses stay to the end), 350 steps.
$INERF benchmark pose --run "$RUN" --data "$DATA" --split test --images 5 --trials 5 \
    --perturb-rot 80 --perturb-trans 0.3 --hypotheses 16 --spread-rot 80 --spread-trans 0.3 \
    --prune-steps 60,120 --sampling random --steps 350 --rays 1024 --seed 0 --checkpoints 100,200,300,350 \
    --optimizer adam+lm --lm-steps 50 --blur 12 --blur-steps 150 --blur-rays 2 \
    --out "$OUT/hypotheses16" --overwrite "$@"
