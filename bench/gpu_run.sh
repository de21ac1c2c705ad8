#!/usr/bin/env bash
# The GPU check of the semantic text scorer (issue #6: >= 20,000 texts/s on the GPU), as ONE device call.
#
# Here, first (once per checkout; fills the git-ignored .gpu/, ~50 MB):
#     bash bench/gpu_prepare.sh
# then the device tool's call (the machine's start counts too: leave time for one rerun of the 15 minutes):
#     run(command="bash bench/gpu_run.sh", carry=[".gpu"], timeout_s=540)
# Quicker first look: run(command="N=20000 DEPTHS=fast bash bench/gpu_run.sh", carry=[".gpu"], timeout_s=300)
#
# On the device machine (no network) it installs .gpu/whl/*.whl (pydantic & co.) into /tmp/site, runs the package
# from src/ (PYTHONPATH, no pip install of keymoments, none of its other dependencies), turns the fp16 weights of
# .gpu/minilm back into fp32 in /tmp/minilm, and runs bench/bench_text_gpu.py on 100,000 tweets (depths fast and
# full, batches 1024/2048/4096, then sentiment agreement with the CPU's int8 ONNX Runtime on 2,000 texts). The log
# and the JSON come back under $OUT (log.txt, text_gpu.json). Nothing here has run on a GPU yet.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}  # the image's python3 holds torch
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
[ -d .gpu/whl ] || { echo "no .gpu/ here: run bench/gpu_prepare.sh first and carry .gpu" >&2; exit 2; }
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD/src
export KM_CACHE_DIR=/tmp/km-cache KM_TEXT_DEVICE=${KM_TEXT_DEVICE:-auto}
mkdir -p /tmp/minilm && cp .gpu/minilm/tokenizer.json /tmp/minilm/
"$PY" - <<'PYEOF' || exit 4
import numpy as np
from safetensors.numpy import load_file, save_file

w = load_file(".gpu/minilm/model.safetensors")
save_file({k: v.astype(np.float32) for k, v in w.items()}, "/tmp/minilm/model.safetensors")
PYEOF
{
  nvidia-smi -L
  "$PY" -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  nproc
  "$PY" bench/bench_text_gpu.py --model-dir /tmp/minilm --csv .gpu/twcs_head5000.csv --n "${N:-100000}" \
    --depths "${DEPTHS:-fast,full}" --batches "${BATCHES:-1024,2048,4096}" --out "$OUT/text_gpu.json"
} 2>&1 | tee "$OUT/log.txt"
