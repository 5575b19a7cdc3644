#!/usr/bin/env bash
# Paper 002, Table 5 (Sec. 4.2) in one command: RRW with batch normalisation trained on all 100 ACDC training
# patients, the 50 challenge test patients predicted, exported as a checked submission zip (ED/ES per patient),
# and, where the download holds the test labels (current release), evaluated locally per phase in Table 5's layout.
# Uses its own dataset id (default 28) so that the full-training split does not replace Table 2's split.
# Usage: ACDC_ROOT=... nnUNet_raw=... nnUNet_preprocessed=... bash examples/acdc/table5.sh
#        PREPARE_ONLY=1 ... stops after preprocessing and prints the plans (check them before training).
# Paper settings (Sec. 4.2, "following Isensee et al. 2017"), each overridable from the environment; the two
# marked CHECK were lost in our text of the paper (see README.md):
set -euo pipefail
export DATASET_ID="${DATASET_ID_FULL:-28}"
export FULL_TRAINING_SET=1 TABLE5_PLANS=1
export IN_PLANE_SPACING="${IN_PLANE_SPACING:-1.25 1.25}"   # mm (y x), CHECK against the published PDF
export PATCH_SIZE="${PATCH_SIZE:-320 320}"                 # voxels (y x), CHECK (352 x 352 failed in the paper)
export BATCH_SIZE="${BATCH_SIZE:-10}"                      # slices per batch
export BASE_FEATURES="${BASE_FEATURES:-48}"                # initial filters, doubling per stage
export MAX_FEATURES="${MAX_FEATURES:-480}"                 # nnU-Net v1's MAX_FILTERS_2D
export PLANS="${PLANS:-nnUNetPlansACDCTable5}"
# shellcheck source=config.sh
source "$(dirname "${BASH_SOURCE[0]}")/config.sh"
TRAINER="${TRAINER:-nnUNetTrainerRRW_BN}"                  # RRW loss + batch normalisation
DEVICE="${DEVICE:-cuda}"                                   # nnU-Net's -device (cuda, cpu, mps)
OUT="$RESULTS_ROOT/table5"
run_dir="$OUT/$TRAINER"
: "${ACDC_ROOT:?set ACDC_ROOT to the ACDC download (the folder holding training/ and testing/)}"

if ! compgen -G "$ACDC_ROOT/testing/patient*" > /dev/null && ! compgen -G "$ACDC_ROOT/testing/testing/patient*" > /dev/null
then
  echo "table5.sh: error: no test patients in $ACDC_ROOT/testing: Table 5 predicts the 50 challenge test" \
    "patients; point ACDC_ROOT at the download holding training/ and testing/." >&2
  exit 2
fi
echo "Table 5 settings: in-plane spacing ${IN_PLANE_SPACING} mm (CHECK), patch ${PATCH_SIZE} (CHECK), batch" \
  "${BATCH_SIZE}, features ${BASE_FEATURES} doubling up to ${MAX_FEATURES}, trainer ${TRAINER}, plans ${PLANS}," \
  "dataset ${DATASET_ID}"
bash "$HERE/prepare.sh"
if [[ "${PREPARE_ONLY:-0}" == 1 ]]; then
  echo "PREPARE_ONLY=1: check the plans before training (Valverde & Tohka 2022 Sec. 4.2; README.md, Table 5):"
  "$PYTHON" "$HERE/table5_plans.py" --show "$PRE_DIR/$PLANS.json"
  exit 0
fi
if ! compgen -G "$RAW_DIR/imagesTs/*.nii.gz" > /dev/null; then
  echo "table5.sh: error: $RAW_DIR/imagesTs is empty (converted without ACDC's testing folder): nothing to" \
    "submit; delete $RAW_DIR and its nnUNet_preprocessed folder and run again." >&2
  exit 2
fi
mkdir -p "$run_dir"

# fold 0 = all 200 training frames (nnU-Net's fold `all` would be equivalent)
nnUNet_results="$run_dir" nnUNetv2_train "$DATASET_ID" "$CONFIG" "$FOLD" -tr "$TRAINER" -p "$PLANS" -device "$DEVICE"
rm -rf "$run_dir/pred_test"                                # no prediction of an earlier run survives
nnUNet_results="$run_dir" nnUNetv2_predict -i "$RAW_DIR/imagesTs" -o "$run_dir/pred_test" \
  -d "$DATASET_ID" -c "$CONFIG" -f "$FOLD" -tr "$TRAINER" -p "$PLANS" -device "$DEVICE"

# patientXXX_frameYY.nii.gz -> patientXXX_ED.nii.gz / patientXXX_ES.nii.gz, checked, zipped for upload
"$PYTHON" "$HERE/export_submission.py" "$run_dir/pred_test" -o "$run_dir/acdc_submission" \
  --acdc-root "$ACDC_ROOT" --phases "$RAW_DIR/acdc_phases.json" --zip
echo "upload $run_dir/acdc_submission.zip to the ACDC evaluation platform; it reports Dice and HD per phase"

# local per-phase evaluation where the download holds the test labels
if compgen -G "$RAW_DIR/labelsTs/*.nii.gz" > /dev/null; then
  nnunet-lossplug evaluate "$RAW_DIR/labelsTs" "$run_dir/pred_test" -o "$run_dir/test_evaluation.json" \
    --dataset-json "$RAW_DIR/dataset.json" -np "$NUM_PROCESSES"
  "$PYTHON" "$HERE/table5_report.py" "$run_dir/test_evaluation.json" --phases "$RAW_DIR/acdc_phases.json" \
    --name "$TRAINER" | tee "$run_dir/table5.md"
else
  echo "no test labels in $RAW_DIR/labelsTs: Table 5 comes from the challenge platform only"
fi
