#!/usr/bin/env bash
# Paper 002, Sec. 4.3 / Fig. 5: how often does training converge? 50 models each of RW-Boundary (eq. 3) and
# RRW (eq. 4), 50 epochs each, empirical CDF of the mean validation Dice of every model (eq. 8).
# The 50-epoch runs use trainer variants with `epochs = 50` (EPOCH_SUFFIX, default "_50epochs"), e.g.
#     class nnUNetTrainerRRW_50epochs(nnUNetTrainerRRW): epochs = 50
# Usage: ACDC_ROOT=... nnUNet_raw=... nnUNet_preprocessed=... bash examples/acdc/fig5_stability.sh
set -euo pipefail
# shellcheck source=config.sh
source "$(dirname "${BASH_SOURCE[0]}")/config.sh"
N_MODELS="${N_MODELS:-50}"
EPOCH_SUFFIX="${EPOCH_SUFFIX:-_50epochs}"
TRAINERS=(nnUNetTrainerRWBoundary nnUNetTrainerRRW)
OUT="$RESULTS_ROOT/fig5"

bash "$HERE/prepare.sh"

for model in $(seq 1 "$N_MODELS"); do
  for base in "${TRAINERS[@]}"; do
    trainer="$base$EPOCH_SUFFIX"
    run_dir="$OUT/$trainer/run_$model"
    if [[ -f "$run_dir/evaluation.json" ]]; then continue; fi   # resumable: finished runs are kept
    mkdir -p "$run_dir"
    nnUNet_results="$run_dir" nnUNetv2_train "$DATASET_ID" "$CONFIG" "$FOLD" -tr "$trainer" -p "$PLANS"
    nnUNet_results="$run_dir" nnUNetv2_predict -i "$RAW_DIR/imagesVal" -o "$run_dir/pred_val" \
      -d "$DATASET_ID" -c "$CONFIG" -f "$FOLD" -tr "$trainer" -p "$PLANS"
    nnunet-lossplug evaluate "$RAW_DIR/labelsVal" "$run_dir/pred_val" -o "$run_dir/evaluation.json" \
      --dataset-json "$RAW_DIR/dataset.json" -np "$NUM_PROCESSES" --no-progress
  done
done

"$PYTHON" "$HERE/stability_cdf.py" -o "$OUT/fig5_cdf.png" \
  --group "RW-Boundary" "$OUT/nnUNetTrainerRWBoundary$EPOCH_SUFFIX/run_*/evaluation.json" \
  --group "RRW" "$OUT/nnUNetTrainerRRW$EPOCH_SUFFIX/run_*/evaluation.json"
nnunet-lossplug compare "$OUT/nnUNetTrainerRRW$EPOCH_SUFFIX/run_1/evaluation.json" \
  "$OUT/nnUNetTrainerRWBoundary$EPOCH_SUFFIX/run_1/evaluation.json" --names RRW RW-Boundary
