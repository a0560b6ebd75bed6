"""The aggregated table (`gradest.reports.table`) and ``gradest table``: the long form's exact
CSV columns and its t-intervals, the wide form in Markdown, LaTeX and HTML with the best in bold
and ties marked, the report's "Table" and "Paired comparisons" sections, and bad input."""
from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gradest import cli
from gradest.reports.table import TABLE_COLUMNS, declared_metrics, long_table, render

#: per estimator label: (gradient mse per seed, final_exact_loss per seed); three seeds
VALUES = {"reinforce": ([4.0, 5.0, 6.0], [1.0, 1.2, 1.1]),
          "reinforce[baseline=loo]": ([1.0, 1.1, 0.9], [0.50, 0.70, 0.60]),
          "gumbel_softmax": ([1.5, 1.0, 1.3], [0.52, 0.72, 0.61])}


def _cells() -> pd.DataFrame:
    rows = []
    for estimator, (mse, loss) in VALUES.items():
        for seed in range(3):
            common = {"task": "bandit", "estimator": estimator, "estimator_name": estimator.split("[")[0],
                      "backend": "torch", "device": "cpu", "seed": seed, "status": "done"}
            rows.append({**common, "key": f"g{estimator}{seed}", "kind": "gradient", "num_samples": 4,
                         "mse": mse[seed], "variance": mse[seed], "bias_sq": 0.0, "seconds_per_estimate": 1e-4,
                         "cosine_to_exact": 0.5, "num_replicates": 100})
            rows.append({**common, "key": f"t{estimator}{seed}", "kind": "train", "num_samples": 2,
                         "final_exact_loss": loss[seed]})
    rows.append({**rows[0], "key": "skipped", "status": "skipped", "mse": np.nan, "estimator": "exact"})
    return pd.DataFrame(rows)


@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    _cells().to_csv(folder / "results.csv", index=False)
    return folder


def test_long_form_means_intervals_and_exact_csv_columns():
    long = long_table(_cells())
    assert tuple(long.columns[:len(TABLE_COLUMNS)]) == TABLE_COLUMNS
    assert set(long["metric"]) == {"mse", "variance", "bias_sq", "seconds_per_estimate", "final_exact_loss"}
    assert "exact" not in set(long["estimator"])
    row = long[(long["estimator"] == "reinforce") & (long["metric"] == "mse")].iloc[0]
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # values 4, 5, 6: sd 1
    assert row["mean"] == pytest.approx(5.0) and row["seeds"] == 3 and row["num_samples"] == 4
    assert (row["low"], row["high"]) == pytest.approx((5.0 - half, 5.0 + half))
    csv = pd.read_csv(io.StringIO(render(long, "csv")))
    assert tuple(csv.columns[:len(TABLE_COLUMNS)]) == TABLE_COLUMNS and len(csv) == len(long)
    only = long_table(_cells(), metrics=["final_exact_loss"])
    assert set(only["metric"]) == {"final_exact_loss"} and set(only["num_samples"]) == {2}


def test_best_in_bold_and_ties_marked():
    long = long_table(_cells(), metrics=["mse", "final_exact_loss"])
    best = long[long["best"]].set_index("metric")["estimator"]
    assert best["mse"] == "reinforce[baseline=loo]" and best["final_exact_loss"] == "reinforce[baseline=loo]"
    tied = long[long["tied"]].set_index("metric")["estimator"]
    assert list(tied) == ["gumbel_softmax", "gumbel_softmax"]  # its intervals overlap the best's; reinforce's not
    markdown = render(long, "markdown")
    assert "**1 ± 0.248**" in markdown and "†" in markdown and "Bold: the best" in markdown
    assert "| reinforce[baseline=loo] | 2 |" in markdown  # rows: estimator and S
    latex = render(long, "latex")
    assert "\\toprule" in latex and "\\bottomrule" in latex and "\\bfseries 1 $\\pm$ 0.248" in latex
    assert "reinforce[baseline=loo]" in latex and "final\\_exact\\_loss" in latex and "$^\\dagger$" in latex
    assert "95\\% t-interval" in latex and "multirow" not in latex  # LaTeX reads a bare % as a comment
    page = render(long, "html")
    assert "font-weight: bold" in page and "<caption>" in page and "1 ± 0.248" in page


def test_metrics_are_declared_by_the_kinds():
    declared = declared_metrics()
    assert declared["mse"] == ("gradient", "lower") and declared["final_test_neg_elbo"] == ("train", "lower")
    assert set(declared_metrics(["train"])) >= {"final_exact_loss", "self_log10_variance"}
    assert "mse" not in declared_metrics(["train"])


def test_the_command_line_knows_every_format_without_importing_pandas():
    import subprocess
    import sys

    from gradest.cli.table import FORMATS as CLI_FORMATS
    from gradest.reports.table import FORMATS

    assert CLI_FORMATS == FORMATS
    code = "import sys; from gradest import cli; cli.build_parser(); print('pandas' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_gradest_table_prints_and_writes(results, tmp_path, capsys):
    assert cli.main(["table", str(results)]) == 0
    out = capsys.readouterr().out
    assert "bandit: mse" in out and "**" in out
    assert cli.main(["table", str(results), "--format", "csv", "--metrics", "mse"]) == 0
    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(csv.columns[:len(TABLE_COLUMNS)]) == list(TABLE_COLUMNS) and set(csv["metric"]) == {"mse"}
    target = tmp_path / "table.tex"
    assert cli.main(["table", str(results), "--format", "latex", "--kinds", "train", "--out", str(target)]) == 0
    assert "\\toprule" in target.read_text() and "mse" not in target.read_text()


@pytest.mark.parametrize("extra, message", [
    (["--metrics", "nope"], "unknown metric nope"),
    (["--kinds", "nope"], "unknown kind nope; known kinds: gradient"),
    (["--kinds", "train", "--metrics", "mse"], "known metrics: final_exact_loss"),
    (["--format", "docx"], "invalid choice"),
    (["--kinds", "temperature"], "holds no finished cell"),
])
def test_gradest_table_refuses_bad_input(results, capsys, extra, message):
    assert cli.main(["table", str(results), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_gradest_table_refuses_an_existing_out_and_empty_folders(results, tmp_path, capsys):
    target = tmp_path / "exists.md"
    target.write_text("keep me")
    assert cli.main(["table", str(results), "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert "remove it or name another file" in err and len(err.splitlines()) == 1 and target.read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    assert cli.main(["table", str(tmp_path / "empty")]) == 2
    assert "neither a `gradest run` results folder" in capsys.readouterr().err
    assert cli.main(["table", str(tmp_path / "missing")]) == 2


def test_report_has_the_table_and_paired_comparisons(results, tmp_path):
    from gradest.reports import build_report

    index = build_report([results], tmp_path / "report")
    page = index.read_text()
    assert "<h2 id='table'>Table</h2>" in page and "font-weight: bold" in page
    assert "Paired comparisons" in page and "scipy.stats.ttest_rel" in page and "scipy.stats.wilcoxon" in page
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "## Table" in summary and "**1 ± 0.248**" in summary and "## Paired comparisons" in summary
    assert "holds, separated" in summary  # the loo baseline against gumbel_softmax: pairs separate them
