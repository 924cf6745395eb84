#!/usr/bin/env bash
# Routed networks on a GPU, in one command: bench/gpu.sh OUTDIR [--device cuda|cpu]
#   [--quick] [--data synthetic|hybrid] [--iterations N] [--engines E1,E2]
#
# Writes OUTDIR/gpu.json and OUTDIR/gpu.md: `routec bench` of paper_chain and
# resnet_chain at batch 1 and 256 (fixed mix 50/10/10/10/5/5/5/5 %) in every engine
# that runs here (eager, fused, compiled, cudagraphs; onnx where onnxruntime is
# installed), and 1,000-iteration actor and static trainings of paper_chain in fp32 and
# bf16 (synthetic data unless --data names another set). Under 8 minutes on one GPU.
# `--device cpu --quick` is the dry run CI makes (tiny counts, not a measurement).
#
# The GPU machine may have no network, and PyTorch with CUDA but not routec's other
# dependencies. Download them beforehand on a machine with network, for the GPU
# machine's Python version and platform, and carry the folder over:
#
#   pip download -d wheels --python-version 3.11 --platform manylinux2014_x86_64 \
#       --only-binary=:all: lark pydantic networkx graphviz numpy matplotlib rich \
#       safetensors tensorboard onnx onnxruntime-gpu
#
# then, on the GPU machine, from the repository root:
#
#   pip install --no-index --find-links wheels lark pydantic networkx graphviz numpy \
#       matplotlib rich safetensors tensorboard
#   pip install --no-index --find-links wheels --no-deps -e .
#   pip install --no-index --find-links wheels onnx onnxruntime-gpu   # optional: onnx
#
# (--no-deps keeps pip from replacing the machine's CUDA build of torch.)
set -euo pipefail
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: bench/gpu.sh OUTDIR [--device cuda|cpu] [--quick] [--data NAME]" >&2
    exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
python="${PYTHON:-python3}"
# routec from this checkout even where it is not installed
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" "$here/gpu.py" "$@"
