#!/usr/bin/env bash
# The zoo's frontier on a GPU, one call of at most 8 minutes on an H100/H200 (issue #22): for each row
# still short of its goal, a sweep at the row's full length (18 epochs) with workers sharing the GPU,
# its finalists on fresh validation seeds, and 5 test seeds of a new winner. Run it after
# benchmarks/gpu_check.sh; run it again to continue every stage. What it does and why:
# benchmarks/gpu_frontier.py and docs/sweeps.md ("A frontier run on a GPU"). Writes
# results/gpu-frontier/ (summary.json: what was chosen on which validation numbers; report.py does
# not read this folder, so nothing reaches the README unvetted) and runs/gpu-frontier/.
#
# Needs what gpu_check.sh needs (MNIST in $TINYMNIST_DATA, e.g. .gpu-data), and Optuna: carry it in
# .gpu-wheels/ too. The GPU image has Optuna's numpy, PyYAML, tqdm and packaging, and Mako's MarkupSafe;
# these five and a recent typing-extensions (5.5 MB in all) come from a connected machine:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .gpu-wheels optuna alembic colorlog sqlalchemy mako typing-extensions
# Where the copy has no .git, set GPU_FRONTIER_COMMIT to the commit it was made from (for summary.json).
#
# GPU_FRONTIER_SMOKE=1 benchmarks/gpu_frontier.sh [FOLDER] runs the whole pipeline on the CPU, tiny
# (1-epoch trials on 512 images, one validation and one test seed, on a subset of MNIST), into FOLDER
# (default: a new temporary folder): a check of the script, never a result.
set -euo pipefail
started=$(date +%s)  # the stages' budgets count from here, setup included
cd "$(dirname "$0")/.."
: "${TINYMNIST_DATA:?set TINYMNIST_DATA to a folder with the four MNIST files}"

# The budgets and sizes, each overridable from the environment. The stages' seconds add up from the
# script's start, setup included (a stage that ends early leaves its time to the next); with up to 15 s
# to stop the last commands, the defaults end within 8 minutes.
if [ -n "${GPU_FRONTIER_SMOKE:-}" ]; then
    : "${GPU_FRONTIER_ROWS:=tiny4k}" "${GPU_FRONTIER_SWEEP_SECONDS:=120}" "${GPU_FRONTIER_TRIALS:=2}"
    : "${GPU_FRONTIER_WORKERS:=1}" "${GPU_FRONTIER_VALIDATION_SEEDS:=2}" "${GPU_FRONTIER_JOBS:=2}"
    : "${GPU_FRONTIER_SEEDS:=1}" "${GPU_FRONTIER_REPEAT_JOBS:=1}"
fi
ROWS=${GPU_FRONTIER_ROWS:-tiny8k tiny4k tiny20k tiny1k5}    # most wanted first: validation goes row by row
SWEEP_SECONDS=${GPU_FRONTIER_SWEEP_SECONDS:-200}             # setup, then stage 1: all rows' sweeps at once
VALIDATION_SECONDS=${GPU_FRONTIER_VALIDATION_SECONDS:-150}   # stage 2: each row's finalists, validation seeds
REPEAT_SECONDS=${GPU_FRONTIER_REPEAT_SECONDS:-105}           # stage 3: the test seeds of each new winner
TRIALS=${GPU_FRONTIER_TRIALS:-60}                  # trials each sweep should reach, over calls
WORKERS=${GPU_FRONTIER_WORKERS:-2}                 # sweep workers per row, all sharing the GPU
FINALISTS=${GPU_FRONTIER_FINALISTS:-1}             # the sweep's best trials, besides the zoo's design
VALIDATION_SEEDS=${GPU_FRONTIER_VALIDATION_SEEDS:-2 3 4}   # fresh: seed 1 is the sweep's own run
JOBS=${GPU_FRONTIER_JOBS:-8}                       # validation runs at once
SEEDS=${GPU_FRONTIER_SEEDS:-5}                     # test seeds of a new winner (tinymnist repeat)
REPEAT_JOBS=${GPU_FRONTIER_REPEAT_JOBS:-5}         # of those, trained at once per row

if [ -d .gpu-wheels ]; then
    python -m pip install -q --no-index --find-links .gpu-wheels optuna
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
where=()
if [ -n "${GPU_FRONTIER_SMOKE:-}" ]; then
    out=${1:-$(mktemp -d)}
    where=(--smoke --device cpu --results "$out/results" --runs "$out/runs")
else
    python -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU here'; print(torch.cuda.get_device_name())"
fi
# shellcheck disable=SC2086  # the lists split into words on purpose
exec python benchmarks/gpu_frontier.py --started "$started" --rows $ROWS --sweep-seconds "$SWEEP_SECONDS" \
    --validation-seconds "$VALIDATION_SECONDS" --repeat-seconds "$REPEAT_SECONDS" --trials "$TRIALS" \
    --workers "$WORKERS" --finalists "$FINALISTS" --validation-seeds $VALIDATION_SEEDS --jobs "$JOBS" \
    --seeds "$SEEDS" --repeat-jobs "$REPEAT_JOBS" ${where[@]+"${where[@]}"}
