"""Every python code block in docs/ runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def doc_blocks():
    for path in sorted(DOCS.rglob("*.md")):
        for i, block in enumerate(BLOCK.findall(path.read_text())):
            if "# docs: skip" not in block:
                yield pytest.param(block, id=f"{path.relative_to(DOCS)}[{i}]")


@pytest.mark.parametrize("block", list(doc_blocks()))
def test_doc_block_runs(block):
    code = compile(block, "<doc>", "exec", dont_inherit=True)
    exec(code, {"__name__": "__doc_example__"})
