"""``compare`` (paired permutation tests between two results) and ``plot`` (per-class box plots)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from nnunet_lossplug.cli import compare as compare_cli
from nnunet_lossplug.cli import plot as plot_cli
from nnunet_lossplug.cli.errors import run_subcommand
from nnunet_lossplug.evaluation.compare_results import compare_results, format_comparison_table
from nnunet_lossplug.evaluation.plots import plot_results
from nnunet_lossplug.evaluation.result_io import display_name, load_result


def _result(dice_by_case: dict[str, list[float]], hd_by_case: dict[str, list[float]], statuses=None) -> dict:
    cases = {}
    for case, dices in dice_by_case.items():
        cases[case] = {
            str(label): {
                "dice": d,
                "hd": h,
                "hd95": h,
                "status": (statuses or {}).get((case, label), "both_present"),
            }
            for label, (d, h) in enumerate(zip(dices, hd_by_case[case], strict=True), start=1)
        }
    return {"cases": cases, "label_names": {"1": "RV", "2": "LV"}}


def _write(path: Path, result: dict) -> Path:
    path.write_text(json.dumps(result))
    return path


def test_pairs_only_common_cases_and_drops_undefined_values() -> None:
    a = _result({"p1": [0.9, 0.8], "p2": [0.7, 0.6], "p3": [0.5, 0.5], "onlyA": [0.1, 0.1]},
                {"p1": [1.0, 2.0], "p2": [3.0, math.nan], "p3": [5.0, 6.0], "onlyA": [9.0, 9.0]})
    b = _result({"p1": [0.8, 0.8], "p2": [0.6, 0.5], "p3": [0.3, 0.4], "onlyB": [0.2, 0.2]},
                {"p1": [2.0, 2.0], "p2": [3.0, 4.0], "p3": [6.0, 6.0], "onlyB": [1.0, 1.0]})
    report = compare_results(a, b, metrics=["dice", "hd"])
    assert report.n_paired_cases == 3 and report.only_in_a == ["onlyA"] and report.only_in_b == ["onlyB"]
    rows = {(r.label, r.metric): r for r in report.rows}
    rv_dice = rows[("1", "dice")]
    # B - A over p1..p3: (-0.1, -0.1, -0.2): mean -0.1333; all differences share a sign: exact p = 2/8
    assert rv_dice.mean_difference_b_minus_a == pytest.approx(-0.4 / 3)
    assert rv_dice.mean_a == pytest.approx(0.7) and rv_dice.p_value == pytest.approx(0.25) and rv_dice.exact
    lv_hd = rows[("2", "hd")]
    assert lv_hd.n_pairs == 2 and lv_hd.n_dropped_undefined == 1
    assert lv_hd.mean_a == pytest.approx(4.0) and lv_hd.mean_b == pytest.approx(4.0)
    text = format_comparison_table(report, "RRW", "Dice", {"1": "RV", "2": "LV"})
    assert "2 (-1 undefined)" in text and "RV" in text and "0.2500 (exact)" in text


def test_no_common_case_and_unknown_metric_are_errors() -> None:
    a = _result({"p1": [0.9]}, {"p1": [1.0]})
    b = _result({"p2": [0.9]}, {"p2": [1.0]})
    with pytest.raises(ValueError, match="no case in common"):
        compare_results(a, b)
    with pytest.raises(ValueError, match="unknown metrics"):
        compare_results(a, a, metrics=["jaccard"])


def _run(module, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    module.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return run_subcommand(argv[0], args.func, args)  # as the command runs it: a user error is rc 2


def _many_cases(offset: float, n: int = 20, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    dice = {f"case{i:02d}": list(np.clip(rng.normal(0.85 + offset, 0.03, 2), 0, 1)) for i in range(n)}
    hd = {case: list(rng.gamma(4.0, 2.0, 2)) for case in dice}
    return _result(dice, hd, statuses={("case03", 2): "missed"})


def test_compare_cli_marks_significant_difference_and_writes_json(tmp_path: Path, capsys) -> None:
    a_path = _write(tmp_path / "RRW.json", _many_cases(0.05))
    b_path = _write(tmp_path / "Dice.json", _many_cases(0.0))  # same noise, Dice lower by 0.05
    out = tmp_path / "cmp.json"
    assert _run(compare_cli, ["compare", str(a_path), str(b_path), "-n", "2000", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "paired 20 cases" in printed
    dice_line = next(line for line in printed.splitlines() if line.startswith("RV") and "Dice" in line)
    assert dice_line.rstrip().endswith("*")
    saved = json.loads(out.read_text())
    assert saved["n_paired_cases"] == 20 and saved["name_a"] == "RRW" and saved["n_permutations"] == 2000
    rv_dice = next(r for r in saved["rows"] if r["label"] == "1" and r["metric"] == "dice")
    assert rv_dice["significant"] and rv_dice["p_value"] == pytest.approx(1 / 2001)
    # the paper-style table marks the significantly different method with *
    assert any(line.startswith("Dice") and "*" in line for line in printed.splitlines())


def test_compare_cli_reports_bad_file(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"summary": {}}))
    assert _run(compare_cli, ["compare", str(bad), str(bad)]) == 2
    assert "cases" in capsys.readouterr().err


def test_plot_writes_png_with_one_panel_per_class_and_metric(tmp_path: Path) -> None:
    import matplotlib.image

    results = [_many_cases(0.05, seed=1), _many_cases(0.0, seed=2), _many_cases(-0.05, seed=3)]
    out = plot_results(results, tmp_path / "plot.png", names=["RRW", "Dice", "Focal"], dpi=60)
    image = matplotlib.image.imread(out)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > image.shape[0]
    with pytest.raises(ValueError, match="one name per result"):
        plot_results(results, tmp_path / "x.png", names=["only one"])


def test_plot_cli_uses_dataset_json_names(tmp_path: Path, capsys) -> None:
    a = _write(tmp_path / "a.json", _many_cases(0.0))
    dataset_json = tmp_path / "dataset.json"
    dataset_json.write_text(json.dumps({"labels": {"background": 0, "RV": 1, "LV": 2}}))
    out = tmp_path / "figs" / "p.png"
    code = _run(plot_cli, ["plot", str(a), str(a), "-o", str(out), "--names", "A", "B",
                           "--dataset-json", str(dataset_json), "--metrics", "dice,hd95"])
    assert code == 0 and out.stat().st_size > 1000
    assert _run(plot_cli, ["plot", str(a), "-o", str(out), "--metrics", "volume"]) == 2
    assert "metrics" in capsys.readouterr().err


def test_load_result_turns_null_into_nan_and_display_names(tmp_path: Path) -> None:
    path = _write(tmp_path / "evaluation.json", {"cases": {"c": {"1": {"dice": 0.5, "hd": None, "hd95": None}}}})
    assert math.isnan(load_result(path)["cases"]["c"]["1"]["hd"])
    assert display_name(tmp_path / "RRW" / "evaluation.json") == "RRW"
    assert display_name("runs/Focal_fold0.json") == "Focal_fold0"
