"""The main job and every example run (in-process, default arguments, no plots)."""

import re
import runpy
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from skfarho import _cli as cli
from skfarho import _showcase as showcase
from skfarho._cli import main as main_job
from skfarho._showcase import FEATURE_COLUMNS, NOISE_COLUMNS, final_step, short_name

pytestmark = [pytest.mark.no_x64, pytest.mark.examples]

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_example_runs(path, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    module = runpy.run_path(str(path), run_name="example")
    start = time.perf_counter()
    status = module["main"]([])
    assert status in (None, 0)
    assert capsys.readouterr().out.strip()  # it reports its findings
    assert time.perf_counter() - start < 180  # "under a minute" on an idle machine


NOTEBOOKS = sorted((Path(__file__).parents[1] / "examples").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_executes(path, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code"
               for out in cell.get("outputs", [])]
    assert any("GridSearchCV" in out.get("text", "") for out in outputs)
    assert (tmp_path / "skfarho_vs_gridsearch_notebook.png").stat().st_size > 0


def _cells(line):
    return re.split(r"\s{2,}", line.strip())


def _table(out, header):
    """The rows, as lists of cells, of the printed table with this header."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if _cells(line) == header)
    rows = []
    for line in lines[start + 2:]:  # to the first line that is not a row
        if len(_cells(line)) != len(header):
            return rows
        rows.append(_cells(line))
    return rows


def test_main_job_runs_and_plots(capsys, monkeypatch, tmp_path):
    """The comparison, then both showcase sections (small sizes): tables that
    say what the fitted models did, and one PNG each."""
    monkeypatch.chdir(tmp_path)
    sections = []
    run_showcase = cli.showcase
    monkeypatch.setattr(cli, "showcase",
                        lambda args: sections.extend(run_showcase(args)) or sections)
    assert main_job(["--dataset", "wine", "--quiet", "--plot", "plot.png",
                     "--showcase-size", "small"]) == 0
    out = capsys.readouterr().out
    assert "GridSearchCV" in out and "==>" not in out  # --quiet: no progress lines
    features, noise = sections

    common = ["method", "fit time (s)", "test log-loss", "test accuracy"]
    rows = _table(out, [*common, *FEATURE_COLUMNS])
    assert [row[0] for row in rows] == [o.method for o in features.outcomes]
    for row, outcome in zip(rows, features.outcomes, strict=True):
        coef = np.ravel(final_step(outcome.model).coef_)
        kept = np.abs(coef) > 1e-12
        assert row[4:6] == [str(kept.sum()), f"{(kept & features.truth).sum()}/"
                                             f"{features.truth.sum()}"]
        assert float(row[2]) == pytest.approx(outcome.loss, abs=1e-4)
    assert rows[0][4] == str(features.truth.size)  # L2 keeps every feature
    assert final_step(features.outcomes[-1].model).setting_ in rows[-1][6]

    rows = _table(out, [*common, *NOISE_COLUMNS])
    names = [row[0] for row in rows]
    assert names[0].startswith("no cleaning") and rows[0][4:] == ["-"] * 3
    assert ("cleanlab" in " ".join(names)) == (find_spec("cleanlab") is not None)
    flipped = noise.truth
    for row, outcome in zip(rows[1:], noise.outcomes[1:], strict=True):
        issues = final_step(outcome.model).label_issues_
        hits = (issues & flipped).sum()
        assert int(row[4]) == issues.sum() > 0
        assert float(row[5]) == pytest.approx(hits / issues.sum(), abs=1e-3)
        assert float(row[6]) == pytest.approx(hits / flipped.sum(), abs=1e-3)
    best = min(noise.outcomes, key=lambda o: o.loss)
    assert (f"test log-loss, best first: {short_name(best.method)} {best.loss:.4f}"
            in out)

    for name in ("plot.png", "plot_feature_strengths.png", "plot_label_noise.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_showcase_without_cleanlab(monkeypatch):
    monkeypatch.setattr(showcase, "cleanlab_installed", lambda: False)
    section = showcase.noise_section(size="small")
    assert [short_name(o.method) for o in section.outcomes] == ["no cleaning",
                                                                 "skfarho"]
    assert any("cleanlab is not installed" in line for line in section.lines)


def test_main_job_without_showcase_or_plots(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main_job(["--dataset", "wine", "--no-showcase", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "==> [1/2]" in out and "GridSearchCV" in out
    assert "features kept" not in out and "rows flagged" not in out
    assert not list(tmp_path.iterdir())


def test_main_job_rejects_bad_arguments(capsys):
    assert main_job(["--learn", "learning_rate", "--hypergradient", "implicit",
                     "--no-plot", "--quiet"]) != 0
