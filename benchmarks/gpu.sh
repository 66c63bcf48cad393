#!/usr/bin/env bash
# The GPU checks of crossent in one run, on a machine with an NVIDIA GPU (CI has none).
#
#   benchmarks/gpu.sh [OUT_DIR]      (default out/gpu; PY=python to choose the interpreter)
#
# 1. the GPU tests: tests/crossent_torch/test_cuda.py on CUDA (the fused op with its options
#    and outputs, bfloat16 at a 32k vocabulary with its peak memory, distillation, core losses)
#    and the streaming calibration's CUDA test;
# 2. the fused linear cross-entropy at the sizes LLMs train, in bfloat16, forward + backward:
#    Gemma-2 (8192 tokens x 2304 hidden x 256000 vocabulary) and Llama-3 (8192 x 4096 x 128256),
#    crossent against PyTorch's F.linear_cross_entropy, Cut Cross-Entropy's cce, Liger Kernel,
#    torch.compile and plain PyTorch, each as a multiple of the three-GEMM floor ("x floor";
#    a fraction of the floor's speed is its inverse). Peers that are not installed say so;
#    the machine needs no network (install cut-cross-entropy and liger-kernel beforehand);
# 3. one patched vs unpatched Hugging Face training step at a 128k vocabulary.
# Figures land in OUT_DIR as JSON next to the printed tables.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/gpu}
PY=${PY:-python}
mkdir -p "$OUT"
status=0

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || status=1
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" || exit 1

echo "== 1. GPU tests"
$PY -m pytest -q -p no:cacheprovider tests/crossent_torch/test_cuda.py \
    "tests/test_calibration_streaming.py::test_cuda_tensors_are_reduced_on_the_device" || status=1

echo "== 2. fused linear cross-entropy, bfloat16, Gemma-2 and Llama-3 heads"
$PY benchmarks/linear_ce.py --device cuda --dtype bfloat16 --repeats 5 \
    --shapes 8192x2304x256000,8192x4096x128256 \
    --methods floor,torch,torch.compile,torch-lce,cce,liger,crossent,crossent-recompute \
    --json "$OUT/linear_ce.json" || status=1

echo "== 3. one training step of a small Llama, 128k vocabulary"
$PY benchmarks/hf_step.py --device cuda --vocab 128256 --seq 2048 --batch 4 \
    --layers 4 --hidden 1024 --json "$OUT/hf_step.json" || status=1

echo "gpu.sh: figures in $OUT (exit $status)"
exit $status
