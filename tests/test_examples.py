"""The main job and every example run (in-process, default arguments, no plots)."""

import runpy
import time
from pathlib import Path

import pytest

from skfarho._cli import main as main_job

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


def test_main_job_runs_and_plots(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main_job(["--dataset", "wine", "--quiet", "--plot", "plot.png"]) == 0
    out = capsys.readouterr().out
    assert "GridSearchCV" in out and "skfarho" in out
    assert (tmp_path / "plot.png").stat().st_size > 0


def test_main_job_rejects_bad_arguments(capsys):
    assert main_job(["--learn", "learning_rate", "--hypergradient", "implicit",
                     "--no-plot", "--quiet"]) != 0
