"""Build the documentation: ``python docs/build.py [--no-gallery] [sphinx args]``.

The same as ``python -m sphinx -b html docs docs/_build/html``; ``--no-gallery``
renders the examples without running them (``-D plot_gallery=0``): quicker, for
editing; CI runs them.
"""

import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--no-gallery" in args:
        args.remove("--no-gallery")
        args += ["-D", "plot_gallery=0"]
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going"]
    command += [str(DOCS), str(DOCS / "_build" / "html"), *args]
    sys.exit(subprocess.call(command))
