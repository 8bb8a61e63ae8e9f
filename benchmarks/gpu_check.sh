#!/usr/bin/env bash
# One short check on a GPU machine (under 5 minutes): install, then infer and index with the
# local engine and with --engine ray (one actor per GPU, num_gpus=1), and one DDP training
# epoch under torchrun; prints files/s and clips/s.
#
#   bash benchmarks/gpu_check.sh            # from the repository root
#   FILES=576 bash benchmarks/gpu_check.sh  # more files (default 288, the demo corpus)
#
# Uses an existing .venv when there is one (make setup), else installs into ./.venv-gpu with
# the CUDA torch wheel that pip picks (torch is not pinned to the CPU wheel here).
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-288}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu tries the script on a machine without a GPU
WORK=${WORK:-$(mktemp -d /tmp/melodex-gpu.XXXX)}
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  python3 -m venv .venv-gpu && PY=.venv-gpu/bin/python
  "$PY" -m pip -q install -e ".[ray]"
fi
"$PY" - <<'EOF'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.device_count(), "GPU(s)")
EOF

# Data: the demo corpus (FMA layout, 30-s clips); a model: one quick epoch on it (also the DDP check)
TPA=$(( (FILES + 15) / 16 ))
"$PY" -m melodex make-demo --out "$WORK/demo" --tracks-per-artist "$TPA" -q
"$PY" -m melodex preprocess --data_dir "$WORK/demo/fma_small" --cache_dir "$WORK/cache" -q

rate() {  # rate LABEL COUNT UNIT COMMAND...: run it, print COUNT/seconds
  local label=$1 count=$2 unit=$3; shift 3
  local start end
  start=$(date +%s.%N)
  "$@" || [ $? -eq 1 ]  # exit 1: some files failed; still a measurement
  end=$(date +%s.%N)
  "$PY" -c "import sys; n, s = float(sys.argv[2]), float(sys.argv[3]) - float(sys.argv[4]); \
print(f'{sys.argv[1]:<44} {n / s:9.1f} {sys.argv[5]}/s  ({s:.1f} s)')" "$label" "$count" "$end" "$start" "$unit"
}

NGPU=$("$PY" -c "import torch; print(max(1, torch.cuda.device_count()))")
CLIPS=$("$PY" -c "import pathlib,sys; print(len(list(pathlib.Path(sys.argv[1]).rglob('*.mp3'))))" "$WORK/demo/fma_small")
echo "--- $CLIPS clips, $NGPU GPU(s)"
if "$PY" -c "import torch.distributed.run" 2>/dev/null; then
  rate "train: 1 epoch, torchrun x$NGPU (DDP)" "$CLIPS" clips \
    "$PY" -m torch.distributed.run --nproc_per_node "$NGPU" -m melodex train --data_dir "$WORK/demo/fma_small" \
      --cache_dir "$WORK/cache" --epochs 1 --output_dir "$WORK/runs" -q \
    || echo "train under torchrun failed (see above)"
fi
if [ ! -e "$WORK/runs/latest" ]; then
  "$PY" -m melodex train --data_dir "$WORK/demo/fma_small" --cache_dir "$WORK/cache" --epochs 1 --output_dir "$WORK/runs" -q
fi
MODEL="$WORK/runs/latest"
rate "infer, local engine, $DEVICE" "$CLIPS" files \
  "$PY" -m melodex infer --model "$MODEL" --audio "$WORK/demo/fma_small" --device "$DEVICE" --output "$WORK/local.jsonl" -q
rate "infer --engine ray (num_gpus=1 per actor)" "$CLIPS" files \
  "$PY" -m melodex infer --model "$MODEL" --audio "$WORK/demo/fma_small" --engine ray --output "$WORK/ray.jsonl" -q
rate "index --engine ray (num_gpus=1 per actor)" "$CLIPS" files \
  "$PY" -m melodex index --model "$MODEL" --audio "$WORK/demo/fma_small" --engine ray --store "$WORK/library" -q
"$PY" - "$WORK/local.jsonl" "$WORK/ray.jsonl" <<'EOF'
import json, sys
import numpy as np
local, ray = ([json.loads(line) for line in open(p)] for p in sys.argv[1:3])
diff = max(float(np.abs(np.subtract(a["embedding"], b["embedding"])).max()) for a, b in zip(local, ray) if "embedding" in a)
print(f"local vs ray on the GPU: {len(local)} and {len(ray)} rows, embeddings differ by at most {diff:.2e}")
EOF
