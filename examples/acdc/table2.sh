#!/usr/bin/env bash
# Paper 002, Table 2 (Sec. 4.1): RRW vs Dice, Focal, RRW-weighted CE and Boundary loss on ACDC17,
# 50 training / 50 validation patients (ED+ES), 300 epochs, 3 independent runs, per-class Dice and HD (mm),
# paired permutation test against RRW (10 000 permutations, * = p < 0.05).
# Usage: ACDC_ROOT=... nnUNet_raw=... nnUNet_preprocessed=... bash examples/acdc/table2.sh
set -euo pipefail
# shellcheck source=config.sh
source "$(dirname "${BASH_SOURCE[0]}")/config.sh"
N_RUNS="${N_RUNS:-3}"
TRAINERS=(nnUNetTrainerRRW nnUNetTrainerDiceOnly nnUNetTrainerFocal nnUNetTrainerCERRWWeighted
          nnUNetTrainerBoundaryDice)
OUT="$RESULTS_ROOT/table2"

bash "$HERE/prepare.sh"

for run in $(seq 1 "$N_RUNS"); do
  for trainer in "${TRAINERS[@]}"; do
    run_dir="$OUT/$trainer/run_$run"
    if [[ -f "$run_dir/evaluation.json" ]]; then continue; fi   # resumable: finished runs are kept
    mkdir -p "$run_dir"
    # train on the even patients (fold 0), predict the odd ones, evaluate in mm on the original volumes
    nnUNet_results="$run_dir" nnUNetv2_train "$DATASET_ID" "$CONFIG" "$FOLD" -tr "$trainer" -p "$PLANS"
    nnUNet_results="$run_dir" nnUNetv2_predict -i "$RAW_DIR/imagesVal" -o "$run_dir/pred_val" \
      -d "$DATASET_ID" -c "$CONFIG" -f "$FOLD" -tr "$trainer" -p "$PLANS"
    nnunet-lossplug evaluate "$RAW_DIR/labelsVal" "$run_dir/pred_val" -o "$run_dir/evaluation.json" \
      --dataset-json "$RAW_DIR/dataset.json" -np "$NUM_PROCESSES"
  done

  # permutation tests of every baseline against RRW (run by run), and the box plots
  for trainer in "${TRAINERS[@]:1}"; do
    nnunet-lossplug compare "$OUT/nnUNetTrainerRRW/run_$run/evaluation.json" \
      "$OUT/$trainer/run_$run/evaluation.json" --metrics dice,hd -n 10000 --seed 0 \
      --names RRW "${trainer#nnUNetTrainer}" -o "$OUT/compare_run${run}_RRW_vs_${trainer#nnUNetTrainer}.json" \
      | tee "$OUT/compare_run${run}_RRW_vs_${trainer#nnUNetTrainer}.txt"
  done
  results=()
  names=()
  for trainer in "${TRAINERS[@]}"; do
    results+=("$OUT/$trainer/run_$run/evaluation.json")
    names+=("${trainer#nnUNetTrainer}")
  done
  nnunet-lossplug plot "${results[@]}" --names "${names[@]}" --dataset-json "$RAW_DIR/dataset.json" \
    -o "$OUT/table2_run${run}.png" --title "ACDC17 validation (50 patients, ED+ES), run $run"
done
