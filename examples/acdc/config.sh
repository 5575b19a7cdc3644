# Shared settings of the ACDC experiments of Valverde & Tohka 2022 (sourced by the other scripts; not run by itself).
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file
# Every variable can be overridden from the environment, e.g. `DATASET_ID=127 N_RUNS=1 bash table2.sh`.

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

: "${nnUNet_raw:?set nnUNet_raw (nnU-Net raw data folder)}"
: "${nnUNet_preprocessed:?set nnUNet_preprocessed (nnU-Net preprocessed data folder)}"
export nnUNet_raw nnUNet_preprocessed

DATASET_ID="${DATASET_ID:-27}"                               # the paper's split (even ids train, odd validate)
DATASET_NAME="$(printf 'Dataset%03d_ACDC' "$DATASET_ID")"
RAW_DIR="$nnUNet_raw/$DATASET_NAME"
PRE_DIR="$nnUNet_preprocessed/$DATASET_NAME"
# nnU-Net plans on a copy of the dataset holding fold 0's training cases only (planning_dataset.py)
PLANNING_DATASET_ID="${PLANNING_DATASET_ID:-$((DATASET_ID + 900))}"
CONFIG="${CONFIG:-2d}"                                       # Valverde & Tohka 2022 trains 2D models on the 3D volumes
FOLD="${FOLD:-0}"                                            # fold 0 = the split written by convert_acdc.py
PLANS="${PLANS:-nnUNetPlans}"
NUM_PROCESSES="${NUM_PROCESSES:-8}"                          # CPU processes for preprocessing / evaluation
PYTHON="${PYTHON:-python}"
# One nnUNet_results folder per experiment, trainer and run: nnU-Net has no seed option, and repeated
# trainings of one trainer would otherwise overwrite each other.
RESULTS_ROOT="${RESULTS_ROOT:-$PWD/acdc_paper002}"
