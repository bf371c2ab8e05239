#!/usr/bin/env bash
# One training stage of the large photo prior on a lent GPU: about $MINUTES minutes (default 8),
# from the committed checkpoint pretrained/photo-large.pt when there is one, else from scratch
# (two thirds of the time without, then one third with the per-pixel scale). The training crops
# travel as one file (pretrained/pack_crops.py, at most 64 MiB with the repository).
#
#     bash pretrained/gpu_stage.sh data/crops.npz OUT_FOLDER
#
# OUT_FOLDER gets photo-large.pt (weights and metadata, no optimizer state: at most 16 MB, and a
# new stage starts a fresh Adam) and train.log. Other settings: DEVICE (default cuda), STEPS (an
# upper bound, default 1000000), LOADERS (threads making batches, default 12), BATCH and CROP
# (crops per step, default 32, and their side, default 96), PRECISION (default bf16), CONTEXT=1 (the
# encoder also reads the solver's context maps, grown from the checkpoint with zero weights).
set -euo pipefail
crops=${1:?the crops file (.npz)}
out=${2:?the output folder}
minutes=${MINUTES:-8}
device=${DEVICE:-cuda}
common=(--device "$device" --steps "${STEPS:-1000000}" --loaders "${LOADERS:-12}" --batch-size "${BATCH:-32}" --crop "${CROP:-96}"
        --checkpoint-every 1000 --precision "${PRECISION:-bf16}" --tasks denoise,inpaint,superres,deblur --gray 0.25 --colour 0.3 --overwrite -q)
if [ "${CONTEXT:-0}" = 1 ]; then common+=(--context); fi
mkdir -p "$out"
here=$(dirname "$0")
if [ -f "$here/photo-large.pt" ]; then
    restore train "$crops" --out "$out/stage.pt" --init "$here/photo-large.pt" --lr 5e-4 \
        --minutes "$minutes" "${common[@]}" 2>&1 | tee "$out/train.log"
else
    first=$(python3 -c "print($minutes * 2 / 3)")
    second=$(python3 -c "print($minutes / 3)")
    restore train "$crops" --out "$out/base.pt" --arch photo --width 96 --blocks 2 --latent 16 --lr 1e-3 \
        --minutes "$first" "${common[@]}" 2>&1 | tee "$out/train.log"
    restore train "$crops" --out "$out/stage.pt" --init "$out/base.pt" --pixel-scale --lr 5e-4 \
        --minutes "$second" "${common[@]}" 2>&1 | tee -a "$out/train.log"
    rm -f "$out/base.pt"
fi
python3 - "$out/stage.pt" "$out/photo-large.pt" <<'PY'
import sys
from restore.model import load_checkpoint, save_checkpoint
model, state = load_checkpoint(sys.argv[1])
save_checkpoint(sys.argv[2], model, meta=state["meta"])
print(f"{sys.argv[2]}: {state['meta']['steps']} steps in {state['meta']['seconds']} s on {state['meta']['device']}")
PY
rm -f "$out/stage.pt"
