"""The README's demo runs end to end (the figure scripts write into the repo, so
they are run by hand, not here)."""

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_quickstart_runs(capsys):
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "retrained from scratch" in out
    assert "half of the 3s" in out
