#!/usr/bin/env bash
# Every GPU figure of docs/gpu.md in one run on one GPU, in about 10 minutes on an H100:
#   1. the compiled Triton kernels against the torch path, and --device cuda against the CPU
#      (the integer reference and torch-int bit for bit): the tests, with TRITON_INTERPRET=0;
#   2. one cifar10-preset training step, ours (Triton kernels) / ours (torch path) / paper loop /
#      ReLU twin, time and memory, batch 64 and 128, float32 and bf16 autocast;
#   3. verify of torch, ir-float and ir-int on 10,000 cifar10-preset images on the GPU.
# Each part has its own time limit, so the script always ends and prints what it measured.
# Usage: benchmarks/gpu_check.sh [python]   (default: .venv/bin/python, else python)
set -u
cd "$(dirname "$0")/.."
PY=${1:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}
"$PY" -c "import torch, triton; assert torch.cuda.is_available(), 'no CUDA device';
print(torch.cuda.get_device_name(), 'torch', torch.__version__, 'triton', triton.__version__)" \
  || exit 1

echo "== 1. kernels compiled on the GPU, and --device cuda, against their references"
TRITON_INTERPRET=0 timeout 150 "$PY" -m pytest -q -p no:cacheprovider \
  tests/test_neuron_triton.py tests/test_device.py 2>&1 | tail -n 15

echo "== 2. training step (targets: ours <= 1.3x ReLU, <= 0.333x paper loop, saved <= 0.4x)"
for amp in none bf16; do
  for batch in 64 128; do
    timeout 90 "$PY" benchmarks/train_step.py --device cuda --steps 10 --warmup 3 \
      --batch "$batch" --amp "$amp"
  done
done

echo "== 3. verify torch, ir-float, ir-int on 10,000 images (target <= 10 min)"
timeout 290 "$PY" benchmarks/gpu_verify.py --samples 10000 --chunk 64 --cpu-samples 8
