#!/usr/bin/env bash
# Run ON the GPU machine (prepared by model/train/gpu_prepare.sh; carry .whl and train_pack):
#   OUT=<folder that comes back> bash model/train/gpu_run.sh
# installs the carried wheels, trains every stage from the bundled model within BUDGET seconds (default 480: with
# the installation, a hard stop BUDGET + 45 s and the packing, the command stays within a 600 s limit) on the data
# pack and scikit-image's images, and leaves in $OUT the result (the recipe's final/, or the last stage's final/
# if the recipe did not finish; recipe.json, every stage's log.jsonl and config, the console log) as a tar archive
# in parts of at most 15 MiB with its SHA-256. Back here:
#   python -m model.train.transfer join <the fetched folder> -o runs/gpu-result
set -euo pipefail
: "${OUT:?set OUT to the folder that comes back}"
BUDGET=${BUDGET:-480}
RUN=${RUN:-/tmp/s2vc-gpu-run}
RESULT=$RUN-result
STAGES="decoder-ft cascade inter intra-ft intra"  # the recipe's stages, last first
# The bundled model's (v6) lambdas and losses (assets/models/s2vc-tiny/README.md, stage 6), so that its rate points
# stay where they are and the decoded stages keep its perceptual weighting (the decoder stage keeps equal lambdas)
L='[2.946,23.3,93.18,565.69]'
LOSS='{"pixel_weight":0.5,"perceptual_weight":0.15,"latent_weight":0.05}'
V6=("intra.lambdas=$L" "intra-ft.lambdas=$L" "inter.lambdas=$L" "cascade.lambdas=$L" "intra-ft.loss=$LOSS"
    'cascade.decode=true' "cascade.loss=$LOSS" 'decoder-ft.loss={"pixel_weight":1.0,"perceptual_weight":0.2}')

python -m pip install -q --no-index --find-links .whl diffusers constriction stlpips-pytorch
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python -c "import torch, model; assert torch.cuda.is_available(), 'no CUDA device'"
mkdir -p "$RESULT"
status=0
timeout --signal=TERM --kill-after=20 $((${BUDGET%.*} + 45)) \
    python -m model.train.recipe --out "$RUN" --time-budget "$BUDGET" \
    --set 'sources=["pack:train_pack","skimage"]' "${V6[@]}" > "$RESULT/recipe.log" 2>&1 || status=$?
tail -n 12 "$RESULT/recipe.log"

final=""
[ -f "$RUN/final/model.safetensors" ] && final=$RUN/final
for stage in $STAGES; do
    [ -z "$final" ] && [ -f "$RUN/$stage/final/model.safetensors" ] && final=$RUN/$stage/final
done
[ -n "$final" ] && cp -r "$final" "$RESULT/final"
[ -f "$RUN/recipe.json" ] && cp "$RUN/recipe.json" "$RESULT/"
for log in "$RUN"/*/log.jsonl; do
    [ -f "$log" ] || continue
    stage=$(dirname "$log")
    mkdir -p "$RESULT/$(basename "$stage")"
    cp "$log" "$stage/train_config.json" "$RESULT/$(basename "$stage")/"
done
python -m model.train.transfer split "$RESULT" -o "$OUT"
echo "recipe exit status $status; final model taken from ${final:-nowhere}"
exit "$status"
