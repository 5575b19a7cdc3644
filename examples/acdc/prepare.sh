#!/usr/bin/env bash
# Prepare ACDC for the Valverde & Tohka 2022 experiments: convert, plan on the training cases, preprocess, install the split,
# precompute the maps.
# Usage: ACDC_ROOT=/data/ACDC/database nnUNet_raw=... nnUNet_preprocessed=... bash examples/acdc/prepare.sh
# FULL_TRAINING_SET=1 converts with all 100 training patients in fold 0 (Table 5; use another DATASET_ID).
# TABLE5_PLANS=1 writes Valverde & Tohka's (2022) Table 5 plans ($PLANS, by table5_plans.py) from the default plans.
# PREPARE_ONLY=1 stops after preprocessing (no map precomputation).
set -euo pipefail
# shellcheck source=config.sh
source "$(dirname "${BASH_SOURCE[0]}")/config.sh"
: "${ACDC_ROOT:?set ACDC_ROOT to the ACDC download (the folder holding training/ and testing/)}"
FULL_TRAINING_SET="${FULL_TRAINING_SET:-0}"
TABLE5_PLANS="${TABLE5_PLANS:-0}"
PREPARE_ONLY="${PREPARE_ONLY:-0}"
fail() { echo "prepare.sh: error: $*" >&2; exit 2; }

# 1. nnU-Net raw dataset: imagesTr/labelsTr (ED+ES frames), imagesTs(/labelsTs), imagesVal/labelsVal, dataset.json,
#    splits_final.json (fold 0 = paper split), acdc_phases.json (for the challenge export). An existing dataset
#    folder is kept only if it was converted the same way (else convert_acdc.py refuses and names the fix).
convert_flags=(--if-missing)
if [[ "$FULL_TRAINING_SET" == 1 ]]; then convert_flags+=(--full-training-set); fi
"$PYTHON" "$HERE/convert_acdc.py" "$ACDC_ROOT" --dataset-id "$DATASET_ID" --out "$nnUNet_raw" "${convert_flags[@]}"

# 2. fingerprint and nnU-Net's default plans from fold 0's training cases only (as nnU-Net v1 planned on the
#    training patients in the reference), moved to the dataset; the planning fingerprint is kept beside them
marker="$PRE_DIR/planned_on_training_cases.json"
if [[ ! -f "$PRE_DIR/nnUNetPlans.json" || ! -f "$marker" || "$RAW_DIR/splits_final.json" -nt "$marker" ]]; then
  planning_dir="$("$PYTHON" "$HERE/planning_dataset.py" "$RAW_DIR" --dataset-id "$PLANNING_DATASET_ID" | sed -n 's/^wrote \(.*\): .*/\1/p')"
  planning_name="$(basename "$planning_dir")"
  rm -f "$nnUNet_preprocessed/$planning_name/nnUNetPlans.json"
  nnUNetv2_extract_fingerprint -d "$PLANNING_DATASET_ID" -np "$NUM_PROCESSES" --verify_dataset_integrity --clean
  nnUNetv2_plan_experiment -d "$PLANNING_DATASET_ID"
  mkdir -p "$PRE_DIR"
  nnUNetv2_move_plans_between_datasets -s "$PLANNING_DATASET_ID" -t "$DATASET_ID" -sp nnUNetPlans -tp nnUNetPlans
  cp "$RAW_DIR/dataset.json" "$PRE_DIR/dataset.json"
  cp "$nnUNet_preprocessed/$planning_name/dataset_fingerprint.json" "$marker"
fi
cp "$marker" "$PRE_DIR/dataset_fingerprint.json"   # nnUNetv2_train copies it into its results folder

# 3. the plans to train with: Table 5's written by code, or an existing custom plans file
if [[ "$TABLE5_PLANS" == 1 ]]; then
  [[ "$CONFIG" == 2d ]] || fail "Table 5 plans define the 2d configuration only; unset CONFIG (now $CONFIG)."
  # shellcheck disable=SC2086  # IN_PLANE_SPACING and PATCH_SIZE hold two numbers each
  "$PYTHON" "$HERE/table5_plans.py" -d "$DATASET_NAME" --source-plans nnUNetPlans --plans "$PLANS" \
    --in-plane-spacing ${IN_PLANE_SPACING:-1.25 1.25} --patch-size ${PATCH_SIZE:-320 320} \
    --batch-size "${BATCH_SIZE:-10}" --base-features "${BASE_FEATURES:-48}" --max-features "${MAX_FEATURES:-480}"
elif [[ ! -f "$PRE_DIR/$PLANS.json" ]]; then
  fail "$PRE_DIR/$PLANS.json does not exist: unset PLANS for nnU-Net's default plans, or write $PLANS first (for Table 5: bash examples/acdc/table5.sh)."
fi
"$PYTHON" - "$PRE_DIR/$PLANS.json" "$CONFIG" <<'PY' || fail "configuration $CONFIG is not in $PRE_DIR/$PLANS.json; set CONFIG to one it defines."
import json, sys
sys.exit(0 if sys.argv[2] in json.load(open(sys.argv[1]))["configurations"] else 1)
PY

# 4. preprocessing with those plans (repeated when the plans file changed)
done_marker="$PRE_DIR/.preprocessed_${PLANS}_${CONFIG}"
if [[ ! -f "$done_marker" || "$PRE_DIR/$PLANS.json" -nt "$done_marker" ]]; then
  nnUNetv2_preprocess -d "$DATASET_ID" -plans_name "$PLANS" -c "$CONFIG" -np "$NUM_PROCESSES"
  touch "$done_marker"
fi

# 5. the paper's split as nnU-Net's fold 0
cp "$RAW_DIR/splits_final.json" "$PRE_DIR/splits_final.json"
if [[ "$PREPARE_ONLY" == 1 ]]; then
  echo "PREPARE_ONLY=1: stopped after preprocessing; plans: $PRE_DIR/$PLANS.json"
  exit 0
fi

# 6. the lossplug hook: RRW and RW-Boundary maps per 3D case with the preprocessed spacing, class statistics
nnunet-lossplug precompute -d "$DATASET_ID" -c "$CONFIG" -p "$PLANS" --maps rrw,boundary -np "$NUM_PROCESSES"
