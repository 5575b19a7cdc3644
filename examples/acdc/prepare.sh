#!/usr/bin/env bash
# Prepare ACDC for the paper 002 experiments: convert, plan + preprocess (2d), install the split, precompute maps.
# Usage: ACDC_ROOT=/data/ACDC/database nnUNet_raw=... nnUNet_preprocessed=... bash examples/acdc/prepare.sh
# FULL_TRAINING_SET=1 converts with all 100 training patients in fold 0 (Table 5; use another DATASET_ID).
set -euo pipefail
# shellcheck source=config.sh
source "$(dirname "${BASH_SOURCE[0]}")/config.sh"
: "${ACDC_ROOT:?set ACDC_ROOT to the ACDC download (the folder holding training/ and testing/)}"
FULL_TRAINING_SET="${FULL_TRAINING_SET:-0}"

# 1. nnU-Net raw dataset: imagesTr/labelsTr (ED+ES frames), imagesTs, imagesVal/labelsVal, dataset.json,
#    splits_final.json (fold 0 = paper split), acdc_phases.json (for the challenge export)
if [[ ! -f "$RAW_DIR/dataset.json" ]]; then
  convert_flags=()
  if [[ "$FULL_TRAINING_SET" == 1 ]]; then convert_flags+=(--full-training-set); fi
  "$PYTHON" "$HERE/convert_acdc.py" "$ACDC_ROOT" --dataset-id "$DATASET_ID" --out "$nnUNet_raw" \
    ${convert_flags[@]+"${convert_flags[@]}"}
fi

# 2. fingerprint, plans and 2d preprocessing (nnU-Net v2's default planner; plans are written to
#    $nnUNet_preprocessed/$DATASET_NAME/nnUNetPlans.json: keep it with the results)
if [[ ! -f "$nnUNet_preprocessed/$DATASET_NAME/$PLANS.json" ]]; then
  nnUNetv2_plan_and_preprocess -d "$DATASET_ID" -c "$CONFIG" -np "$NUM_PROCESSES" --verify_dataset_integrity
fi

# 3. the paper's split as nnU-Net's fold 0
cp "$RAW_DIR/splits_final.json" "$nnUNet_preprocessed/$DATASET_NAME/splits_final.json"

# 4. the lossplug hook: RRW and RW-Boundary maps per 3D case with the preprocessed spacing, class statistics
nnunet-lossplug precompute -d "$DATASET_ID" -c "$CONFIG" -p "$PLANS" --maps rrw,boundary -np "$NUM_PROCESSES"
