"""Writing and reading evaluation results: RESULT.json, its per-case CSV and its summary CSV.

RESULT.json layout (written by ``nnunet-lossplug evaluate``)::

    {"format": "nnunet-lossplug evaluate result",
     "cases": {"patient001_frame01": {"1": {"dice": 0.93, "hd": 4.1, "hd95": 2.9, "status": "both_present",
                                            "gt_voxels": 5120, "pred_voxels": 5012}, ...}, ...},
     "summary": {"n_cases": ..., "classes": {"1": {"dice": {"mean": ..., "std": ..., ...}, ...}},
                 "mean_over_classes": {...}},
     "labels": [1, 2, 3], "label_names": {"1": "RV", ...},
     "case_info": {"patient001_frame01": {"shape": [...], "spacing": [...]}},
     "spacing_source": "...", "conventions": {...}, ...}

Distances are in mm. JSON has no NaN, so an undefined value is written as ``null`` and read back as NaN.
The three files are written by :func:`nnunet_lossplug.evaluation.output_files.write_output`: an existing file
is replaced only if it is an earlier one of the same kind (:data:`RESULT_JSON`, :data:`CASES_CSV`,
:data:`SUMMARY_CSV`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path

from nnunet_lossplug.evaluation.output_files import (
    EVALUATE_FORMAT,
    OutputKind,
    check_replaceable,
    write_text_output,
)
from nnunet_lossplug.evaluation.summary import METRICS

CASE_COLUMNS: tuple[str, ...] = ("case", "label", "name", *METRICS, "status", "gt_voxels", "pred_voxels")
SUMMARY_COLUMNS: tuple[str, ...] = (
    "label", "name", "n_cases", *(f"{m}_{s}" for m in METRICS for s in ("mean", "std", "median", "n")),
    "both_present", "both_empty", "missed", "spurious", "gt_voxel_percent")
RESULT_JSON = OutputKind("result JSON of `nnunet-lossplug evaluate`", json_format=EVALUATE_FORMAT,
                         legacy_keys=frozenset({"cases", "summary", "spacing_source", "conventions"}))
CASES_CSV = OutputKind("per-case CSV of `nnunet-lossplug evaluate`", csv_header=",".join(CASE_COLUMNS))
SUMMARY_CSV = OutputKind("summary CSV of `nnunet-lossplug evaluate`", csv_header=",".join(SUMMARY_COLUMNS))


def to_json_compatible(value):
    """Replace non-finite floats by ``None`` recursively (strict JSON has no NaN or Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_json_compatible(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_compatible(v) for v in value]
    return value


def companion_paths(out_json: str | Path) -> tuple[Path, Path]:
    """Per-case and summary CSV paths written beside ``out_json``: ``X.csv`` and ``X_summary.csv``."""
    out_json = Path(out_json)
    stem = out_json.name[: -len(".json")] if out_json.name.endswith(".json") else out_json.name
    return out_json.with_name(f"{stem}.csv"), out_json.with_name(f"{stem}_summary.csv")


def check_result_outputs(out_json: str | Path, option: str = "-o") -> tuple[Path, Path, Path]:
    """The three paths :func:`write_result_files` writes, refused before any work if one may not be replaced."""
    out_json = Path(out_json)
    case_csv, summary_csv = companion_paths(out_json)
    return (check_replaceable(out_json, RESULT_JSON, option), check_replaceable(case_csv, CASES_CSV, option),
            check_replaceable(summary_csv, SUMMARY_CSV, option))


def write_result_files(result: Mapping, out_json: str | Path, option: str = "-o") -> tuple[Path, Path, Path]:
    """Write ``out_json`` and its two CSV companions; return the three paths.

    The JSON starts with ``"format": "nnunet-lossplug evaluate result"``. The per-case CSV has one row per
    case and class (``case, label, name, dice, hd, hd95, status, gt_voxels, pred_voxels``); the summary CSV one
    row per class with mean, std and the status counts. Nothing is written unless all three paths may be
    written (:func:`check_result_outputs`).
    """
    out_json, case_csv, summary_csv = check_result_outputs(out_json, option)
    names = result.get("label_names", {})

    cases_text = io.StringIO(newline="")
    writer = csv.writer(cases_text)
    writer.writerow(CASE_COLUMNS)
    for case, per_class in result["cases"].items():
        for label, entry in per_class.items():
            writer.writerow(
                [case, label, names.get(label, ""), *(_csv_number(entry[m]) for m in METRICS),
                 entry.get("status", ""), entry.get("gt_voxels", ""), entry.get("pred_voxels", "")]
            )

    summary_text = io.StringIO(newline="")
    writer = csv.writer(summary_text)
    writer.writerow(SUMMARY_COLUMNS)
    for label, stats in result["summary"]["classes"].items():
        counts = stats["status_counts"]
        writer.writerow(
            [label, names.get(label, ""), result["summary"]["n_cases"]]
            + [_csv_number(stats[m][s]) for m in METRICS for s in ("mean", "std", "median", "n")]
            + [counts["both_present"], counts["both_empty"], counts["missed"], counts["spurious"],
               _csv_number(stats["gt_voxel_percent"])]
        )
    payload = {"format": EVALUATE_FORMAT, **{k: v for k, v in result.items() if k != "format"}}
    write_text_output(out_json, RESULT_JSON, json.dumps(to_json_compatible(payload), indent=2, allow_nan=False)
                      + "\n", option)
    write_text_output(case_csv, CASES_CSV, cases_text.getvalue(), option)
    write_text_output(summary_csv, SUMMARY_CSV, summary_text.getvalue(), option)
    return out_json, case_csv, summary_csv


def _csv_number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def _nan_for_null(value):
    if isinstance(value, dict):
        return {k: _nan_for_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_for_null(v) for v in value]
    return math.nan if value is None else value


def load_result(path: str | Path) -> dict:
    """Read a RESULT.json written by ``nnunet-lossplug evaluate``; ``null`` metric values become NaN.

    Raises:
        ValueError: naming ``path``, if it cannot be read, is not JSON, or is not shaped like a result: a
            ``cases`` mapping of case -> class -> ``{"dice", "hd", "hd95"}`` numbers (or null).
    """
    path = Path(path)
    not_a_result = f"{path} is not a results JSON written by `nnunet-lossplug evaluate`"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file; give a RESULT.json written by `nnunet-lossplug evaluate`.") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror or err}).") from None
    except UnicodeDecodeError:
        raise ValueError(f"{not_a_result}: not UTF-8 text.") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{not_a_result}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno}).") \
            from None
    if not isinstance(data, dict) or not isinstance(data.get("cases"), dict):
        raise ValueError(f"{not_a_result}: expected a JSON object with a 'cases' mapping.")
    for case, per_class in data["cases"].items():
        if not isinstance(per_class, dict):
            raise ValueError(f"{not_a_result}: case {case!r} holds {per_class!r}, expected a mapping "
                             "of class -> metrics.")
        for label, entry in per_class.items():
            missing = [m for m in METRICS if not isinstance(entry, dict) or m not in entry]
            if missing:
                raise ValueError(
                    f"{path}: case {case!r}, class {label!r} lacks {missing}; expected keys {list(METRICS)}."
                )
            for metric in METRICS:
                value = entry[metric]
                if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                    raise ValueError(f"{not_a_result}: case {case!r}, class {label!r}: {metric} is {value!r}, "
                                     "expected a number or null.")
                entry[metric] = math.nan if value is None else float(value)
    if "summary" in data:
        data["summary"] = _nan_for_null(data["summary"])
    return data


def load_label_names(dataset_json: str | Path) -> dict[str, str]:
    """``{str(label): name}`` from an nnU-Net dataset.json ``labels`` entry (background and regions skipped).

    nnU-Net stores ``{"background": 0, "RV": 1, ...}``; region-based entries (lists of labels) have no
    single label and are left out.
    """
    content = json.loads(Path(dataset_json).read_text())
    labels = content.get("labels")
    if not isinstance(labels, dict):
        raise ValueError(f"{dataset_json} has no 'labels' mapping (expected nnU-Net's dataset.json format).")
    return {str(v): str(k) for k, v in labels.items() if isinstance(v, int) and v != 0}


def display_name(path: str | Path) -> str:
    """Short name of a result file for tables and legends: its stem, or its folder for generic stems.

    ``runs/RRW/evaluation.json`` -> ``"RRW"``; ``RRW_fold0.json`` -> ``"RRW_fold0"``.
    """
    p = Path(path)
    stem = p.name[: -len(".json")] if p.name.endswith(".json") else p.name
    if stem in ("evaluation", "result", "results", "summary") and p.parent.name:
        return p.parent.name
    return stem


def result_label_names(result: Mapping) -> dict[str, str]:
    """The ``label_names`` stored in a result, or an empty mapping."""
    names = result.get("label_names") or {}
    return {str(k): str(v) for k, v in names.items()}
