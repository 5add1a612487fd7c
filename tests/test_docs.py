"""The Sphinx documentation builds with warnings as errors, as in CI."""

import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "doc"


def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
               "-d", str(tmp_path / "doctrees"), str(DOC), str(tmp_path / "html")]
    build = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, (
        f"sphinx exited with {build.returncode}:\n{build.stdout}\n{build.stderr}")
    assert (tmp_path / "html" / "index.html").is_file()
