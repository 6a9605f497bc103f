#!/usr/bin/env bash
# The GPU figures in one go, a few minutes on an H100/H200: the CUDA-only tests, the speed benchmark
# of the GPU recipes (5 seeds each, the naive baseline in the same run), and hand capture against
# torch.compile. Writes results/speed-gpu*-cuda.json and results/graph-vs-compile-gpu.json.
#
# Needs the repo, a torch with CUDA, and MNIST in $TINYMNIST_DATA; nothing is downloaded. Python
# packages the GPU machine lacks (pytest, torchinfo, safetensors, ...) are installed from wheels
# carried in .gpu-wheels/, made beforehand on a connected machine with, e.g.:
#   pip download --only-binary=:all: --python-version 3.12 -d .gpu-wheels pytest torchinfo safetensors
# MNIST travels the same way: copy its four files into .gpu-data/ (ignored) and set
# TINYMNIST_DATA=.gpu-data there.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${TINYMNIST_DATA:?set TINYMNIST_DATA to a folder with the four MNIST files}"
if [ -d .gpu-wheels ]; then
    python -m pip install -q --no-index --find-links .gpu-wheels pytest torchinfo safetensors
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU here'; print(torch.cuda.get_device_name())"
python -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_optim.py tests/test_precision.py
python benchmarks/time_to_accuracy.py --recipe gpu --seeds 5 --device cuda
python benchmarks/time_to_accuracy.py --recipe gpu-seed --seeds 5 --device cuda --no-baseline
python benchmarks/graph_vs_compile.py --recipe gpu --device cuda
