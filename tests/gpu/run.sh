#!/usr/bin/env bash
# The checks one CUDA machine runs in a single call (at most 8 minutes on one H200): tests/gpu/test_gpu.py (the
# official preset at 1920x1080 through a fake official release folder, the bundled model, one training step of each
# stage, the app's handlers; figures printed; tests/gpu/test_metrics_gpu.py: the learned metrics on CUDA against
# the CPU, with seeded weight files), then bench/bench_codec.py's official-preset speed at 1080p.
#   bash tests/gpu/run.sh          # on the GPU machine
#   bash tests/gpu/run.sh --cpu    # the same logic on a CPU: official structure at small widths, 128x64, no bench
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ "${1:-}" == "--cpu" ]]; then
    export S2VC_GPU_DEVICE=cpu S2VC_GPU_WIDTHS=small S2VC_GPU_SIZE=128x64
    exec timeout 480 python -m pytest -q -s -rs -m gpu tests/gpu
fi
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run with --cpu')"
python -c "import torch; print(torch.__version__, torch.cuda.get_device_name(), flush=True)"
timeout 330 python -m pytest -q -s -rs -m gpu tests/gpu
timeout 140 python bench/bench_codec.py --only cuda --gpu-frames 3
