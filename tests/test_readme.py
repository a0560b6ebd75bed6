"""The README runs as written: its Python blocks, in order, in one namespace."""
from __future__ import annotations

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_python_blocks_run_in_order():
    blocks = python_blocks()
    assert blocks, "the README has Python examples"
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)  # noqa: S102
    # what the first example promises
    assert namespace["g"].shape == (10_000, 3)
    assert len(namespace["result"].history) == 100


def test_readme_points_only_at_files_of_the_project():
    text = README.read_text(encoding="utf-8")
    root = README.parent
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith("http"):
            assert (root / target).exists(), f"README links {target}, which is not in the repository"
    assert "shared folder" not in text and "DESIGN.md" not in text
