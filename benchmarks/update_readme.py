"""Copy the benchmark results into the guide (docs/guide.md), between their markers.

Each ``benchmarks/results/NAME.md`` replaces the text between
``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` in ``docs/guide.md`` (its
headings demoted under the guide's own), so the figures there are always those the
scripts last wrote; the README stays a short runbook and links to them. Run it
after the benchmarks: ``python benchmarks/update_readme.py``.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    readme = ROOT / "docs" / "guide.md"
    text = readme.read_text()
    for result in sorted((ROOT / "benchmarks" / "results").glob("*.md")):
        name = result.stem
        pattern = re.compile(
            rf"(<!-- results:{name} -->\n).*?(<!-- /results:{name} -->)", re.S
        )
        if pattern.search(text):
            # Headings of the result go under the guide's "###" section.
            body = re.sub(r"^#", "####", result.read_text().strip(), flags=re.M)
            body += "\n"
            text = pattern.sub(
                lambda m, body=body: m.group(1) + body + m.group(2), text
            )
            print(f"updated {name}")
    readme.write_text(text)


if __name__ == "__main__":
    main()
