"""The README's first Python snippet prints what its comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_snippet_prints_what_its_comments_say():
    snippet = re.search(r"```python\n(import taskforge\n.*?)```", README.read_text(), re.S).group(1)
    expected = [
        m.group(1).split("   (")[0].strip() for m in re.finditer(r"^print\(.*?#\s*(.*)$", snippet, re.M)
    ]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, "README.md", "exec"), {})
    assert out.getvalue().splitlines() == expected
