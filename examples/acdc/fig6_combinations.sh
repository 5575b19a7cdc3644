#!/usr/bin/env bash
# Paper 002, Sec. 4.4 / Fig. 6: RW loss combined with Dice or cross-entropy, "equal" (sum) or "gradual"
# (α·X + (1−α)·RW, α = max((100 − epoch)/100, 0.01)), with RW-Boundary maps and with RRW maps.
# (a, b) validation Dice per epoch, mean of N_CURVE_RUNS runs of 300 epochs; (c) CDF over N_CDF_RUNS models
# of CDF_EPOCH_SUFFIX trainers (50 epochs, as in Sec. 4.3; set N_CDF_RUNS=0 to skip).
# Usage: ACDC_ROOT=... nnUNet_raw=... nnUNet_preprocessed=... bash examples/acdc/fig6_combinations.sh
set -euo pipefail
# shellcheck source=config.sh
source "$(dirname "${BASH_SOURCE[0]}")/config.sh"
N_CURVE_RUNS="${N_CURVE_RUNS:-3}"
N_CDF_RUNS="${N_CDF_RUNS:-50}"
CDF_EPOCH_SUFFIX="${CDF_EPOCH_SUFFIX:-_50epochs}"
TRAINERS=(nnUNetTrainerRRWDiceEqual nnUNetTrainerRRWDiceGradual nnUNetTrainerRRWCEEqual nnUNetTrainerRRWCEGradual
          nnUNetTrainerBoundaryDice nnUNetTrainerBoundaryCEEqual nnUNetTrainerBoundaryCEGradual)
# nnUNetTrainerBoundaryDice is RW-Boundary + Dice, gradual (Kervadec et al.'s schedule)
OUT="$RESULTS_ROOT/fig6"

bash "$HERE/prepare.sh"

train_predict_evaluate() {  # trainer run_dir
  local trainer="$1" run_dir="$2"
  if [[ -f "$run_dir/evaluation.json" ]]; then return 0; fi   # resumable
  mkdir -p "$run_dir"
  nnUNet_results="$run_dir" nnUNetv2_train "$DATASET_ID" "$CONFIG" "$FOLD" -tr "$trainer" -p "$PLANS"
  nnUNet_results="$run_dir" nnUNetv2_predict -i "$RAW_DIR/imagesVal" -o "$run_dir/pred_val" \
    -d "$DATASET_ID" -c "$CONFIG" -f "$FOLD" -tr "$trainer" -p "$PLANS"
  nnunet-lossplug evaluate "$RAW_DIR/labelsVal" "$run_dir/pred_val" -o "$run_dir/evaluation.json" \
    --dataset-json "$RAW_DIR/dataset.json" -np "$NUM_PROCESSES" --no-progress
}

# (a, b) training curves, 300 epochs
for run in $(seq 1 "$N_CURVE_RUNS"); do
  for trainer in "${TRAINERS[@]}"; do
    train_predict_evaluate "$trainer" "$OUT/curves/$trainer/run_$run"
  done
done
curve_groups=()
for trainer in "${TRAINERS[@]}"; do
  curve_groups+=(--group "${trainer#nnUNetTrainer}"
                 "$OUT/curves/$trainer/run_*/$DATASET_NAME/${trainer}__${PLANS}__$CONFIG/fold_$FOLD/checkpoint_final.pth")
done
"$PYTHON" "$HERE/training_curves.py" -o "$OUT/fig6ab_curves.png" "${curve_groups[@]}"
results=()
names=()
for trainer in "${TRAINERS[@]}"; do
  results+=("$OUT/curves/$trainer/run_1/evaluation.json")
  names+=("${trainer#nnUNetTrainer}")
done
nnunet-lossplug plot "${results[@]}" --names "${names[@]}" --dataset-json "$RAW_DIR/dataset.json" \
  -o "$OUT/fig6_boxplots_run1.png"

# (c) convergence CDF over many short runs
if [[ "$N_CDF_RUNS" -gt 0 ]]; then
  for model in $(seq 1 "$N_CDF_RUNS"); do
    for trainer in "${TRAINERS[@]}"; do
      train_predict_evaluate "$trainer$CDF_EPOCH_SUFFIX" "$OUT/cdf/$trainer$CDF_EPOCH_SUFFIX/run_$model"
    done
  done
  cdf_groups=()
  for trainer in "${TRAINERS[@]}"; do
    cdf_groups+=(--group "${trainer#nnUNetTrainer}" "$OUT/cdf/$trainer$CDF_EPOCH_SUFFIX/run_*/evaluation.json")
  done
  "$PYTHON" "$HERE/stability_cdf.py" -o "$OUT/fig6c_cdf.png" "${cdf_groups[@]}"
fi
