#!/usr/bin/env bash
# Paper 002, Table 5 (Sec. 4.2): RRW with batch normalisation trained on all 100 ACDC training patients,
# predictions of the 50 challenge test patients exported for the ACDC evaluation platform (ED/ES per patient).
# Uses its own dataset id (default 28) so that the full-training split does not replace Table 2's split.
# Paper settings that need a custom plans file (see README.md, "Deviations"): resampling to a common
# in-plane resolution, batches of 10 slices, 48 initial filters and the paper's patch size.
# Usage: ACDC_ROOT=... nnUNet_raw=... nnUNet_preprocessed=... bash examples/acdc/table5.sh
set -euo pipefail
export DATASET_ID="${DATASET_ID_FULL:-28}"
export FULL_TRAINING_SET=1
# shellcheck source=config.sh
source "$(dirname "${BASH_SOURCE[0]}")/config.sh"
TRAINER="${TRAINER:-nnUNetTrainerRRW_BN}"
OUT="$RESULTS_ROOT/table5"
run_dir="$OUT/$TRAINER"

bash "$HERE/prepare.sh"
mkdir -p "$run_dir"

# fold 0 = all 200 training frames (nnU-Net's fold `all` would be equivalent)
nnUNet_results="$run_dir" nnUNetv2_train "$DATASET_ID" "$CONFIG" "$FOLD" -tr "$TRAINER" -p "$PLANS"
nnUNet_results="$run_dir" nnUNetv2_predict -i "$RAW_DIR/imagesTs" -o "$run_dir/pred_test" \
  -d "$DATASET_ID" -c "$CONFIG" -f "$FOLD" -tr "$TRAINER" -p "$PLANS"

# patientXXX_frameYY.nii.gz -> patientXXX_ED.nii.gz / patientXXX_ES.nii.gz, zipped for upload
"$PYTHON" "$HERE/export_submission.py" "$run_dir/pred_test" -o "$run_dir/acdc_submission" \
  --phases "$RAW_DIR/acdc_phases.json" ${ACDC_ROOT:+--acdc-root "$ACDC_ROOT"} --zip
echo "upload $run_dir/acdc_submission.zip to the ACDC evaluation platform; it reports Dice and HD per phase"
