#!/usr/bin/env bash
# One training stage of the large photo prior on a lent GPU, about $MINUTES minutes (default 8): the
# prior for three quarters of the time, then its own JPEG encoder against its frozen decoder for the
# last quarter (the shared encoder reads a JPEG's blocks as image: model card). The prior starts
# from pretrained/photo-large.pt when there is one, else from scratch (two thirds of its time
# without, then one third with the per-pixel scale). Its encoders read the solver's context maps.
# The training crops travel as one file (pretrained/pack_crops.py, at most 64 MiB with the
# repository).
#
#     bash pretrained/gpu_stage.sh data/crops.npz OUT_FOLDER
#
# OUT_FOLDER gets photo-large.pt (weights and metadata, no optimizer state: at most 16 MB, and a
# new stage starts a fresh Adam) and train.log. Other settings: DEVICE (default cuda), STEPS (an
# upper bound, default 1000000), LOADERS (threads making batches, default 12), BATCH and CROP
# (crops per step, default 32, and their side, default 96), PRECISION (default bf16).
set -euo pipefail
crops=${1:?the crops file (.npz)}
out=${2:?the output folder}
minutes=${MINUTES:-8}
device=${DEVICE:-cuda}
share() { python3 -c "print($minutes * $1)"; }
common=(--device "$device" --steps "${STEPS:-1000000}" --loaders "${LOADERS:-12}" --batch-size "${BATCH:-32}" --crop "${CROP:-96}"
        --checkpoint-every 1000 --precision "${PRECISION:-bf16}" --overwrite -q)
prior=(--tasks denoise,inpaint,superres,deblur --gray 0.25 --colour 0.3 --context "${common[@]}")
mkdir -p "$out"
here=$(dirname "$0")
if [ -f "$here/photo-large.pt" ]; then
    restore train "$crops" --out "$out/stage.pt" --init "$here/photo-large.pt" --lr 5e-4 \
        --minutes "$(share 3/4)" "${prior[@]}" 2>&1 | tee "$out/train.log"
else
    restore train "$crops" --out "$out/base.pt" --arch photo --width 96 --blocks 2 --latent 16 --lr 1e-3 \
        --minutes "$(share 1/2)" "${prior[@]}" 2>&1 | tee "$out/train.log"
    restore train "$crops" --out "$out/stage.pt" --init "$out/base.pt" --pixel-scale --lr 5e-4 \
        --minutes "$(share 1/4)" "${prior[@]}" 2>&1 | tee -a "$out/train.log"
    rm -f "$out/base.pt"
fi
restore train "$crops" --out "$out/jpeg.pt" --init "$out/stage.pt" --task-encoder dejpeg --tasks dejpeg \
    --degraded 1.0 --colour 0.25 --lr 3e-4 --minutes "$(share 1/4)" "${common[@]}" 2>&1 | tee -a "$out/train.log"
python3 - "$out/jpeg.pt" "$out/photo-large.pt" <<'PY'
import sys
from restore.model import load_checkpoint, save_checkpoint
model, state = load_checkpoint(sys.argv[1])
save_checkpoint(sys.argv[2], model, meta=state["meta"])
print(f"{sys.argv[2]}: {state['meta']['steps']} steps in {state['meta']['seconds']} s on {state['meta']['device']}")
PY
rm -f "$out/stage.pt" "$out/jpeg.pt"
