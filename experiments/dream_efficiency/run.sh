#!/usr/bin/env bash
# The small-scale DREAM efficiency comparison of issue 4 on genuine MNIST (5-class subset, 200
# training and 100 test images per class, IPC 1), one seed per call, single-threaded:
#   experiments/dream_efficiency/run.sh dc 0     (DC, DC + DREAM, DC + RM only)
#   experiments/dream_efficiency/run.sh idc 0    (IDC, IDC + DREAM)
# then: python experiments/dream_efficiency/compare.py results-dream/<dc|idc>
set -euo pipefail
method=$1 seed=$2
export BENCH_DATA_ROOT="${BENCH_DATA_ROOT:-../shared/data}" BENCH_PROGRESS=0 OMP_NUM_THREADS=1
# the project's virtual environment when there is one, else whatever `bench` is on PATH
repo="$(cd "$(dirname "$0")/../.." && pwd)"
bench() { if [ -x "$repo/.venv/bin/bench" ]; then "$repo/.venv/bin/bench" "$@"; else command bench "$@"; fi; }
out="${OUT:-results-dream}/$method"
common=(--dataset mnist --ipc 1 --seeds "$seed" --classes 5 --max-train-per-class 200 --max-test-per-class 100
        --scale smoke --set curve_points=8 --set curve_epochs=50 --set checkpoint_every=0
        --eval-set epochs=50 --eval-set num_models=1 --out "$out" --device cpu)
case $method in
  dc)
    common+=(--set iterations=40 --set batch_real=64)
    bench run --method dc "${common[@]}"
    bench run --method dc --dream "${common[@]}"
    bench run --method dc --sampler representative "${common[@]}" ;;
  idc)
    # lr_img 0.01 is 100x the authors' MNIST base: at theirs the images barely move in 40 steps
    common+=(--set iterations=8 --set inner_loop=5 --set batch_real=32 --set sampler.batch_real=32
             --set n_data=64 --set lr_img=0.01)
    bench run --method idc "${common[@]}"
    bench run --method idc --dream "${common[@]}" ;;
  *) echo "usage: $0 dc|idc SEED" >&2; exit 2 ;;
esac
