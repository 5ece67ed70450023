"""Every example of docs/event_time.md runs, and prints what the guide says it prints.

The guide's ```python blocks are complete scripts. Each one runs on its own, in a fresh
interpreter (the repository's .venv Python), from a temporary directory. When a
```text block follows a ```python block (with nothing but blank lines between them),
it is the script's expected standard output, compared line for line. A script that
defines ``test_*`` functions (the guide's testing section shows a user's pytest file)
has them called after it ran, as pytest would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import List, NamedTuple, Optional

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDE = os.path.join(ROOT, "docs", "event_time.md")
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
PYTHON = VENV_PYTHON if os.path.exists(VENV_PYTHON) else sys.executable

#: Runs the example file given as argv[1] as __main__, then its test_* functions.
DRIVER = r"""
import runpy, sys
names = runpy.run_path(sys.argv[1], run_name="__main__")
for name, value in list(names.items()):
    if name.startswith("test_") and callable(value):
        value()
"""


class Example(NamedTuple):
    line: int  # 1-based line of the opening fence
    heading: str  # the section it is in
    code: str
    expected: Optional[str]  # the text block after it, if any


_FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)\s*$")


def _blocks(text: str):
    """(opening line, language, body, section heading, next-line index) of each fenced block."""
    lines = text.split("\n")
    heading = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        m = _FENCE.match(line)
        if m is None:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        body: List[str] = []
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != fence:
            body.append(lines[j])
            j += 1
        if j == len(lines):
            raise AssertionError(f"docs/event_time.md:{i + 1}: unclosed code block")
        yield i + 1, lang, "\n".join(body) + "\n", heading, j + 1
        i = j + 1


def examples() -> List[Example]:
    with open(GUIDE, encoding="utf-8") as f:
        text = f.read()
    blocks = list(_blocks(text))
    lines = text.split("\n")
    found = []
    for k, (line, lang, body, heading, after) in enumerate(blocks):
        if lang != "python":
            continue
        expected = None
        if k + 1 < len(blocks):
            next_line, next_lang, next_body, _, _ = blocks[k + 1]
            between = lines[after:next_line - 1]
            if next_lang == "text" and all(not s.strip() for s in between):
                expected = next_body
        found.append(Example(line, heading, body, expected))
    return found


EXAMPLES = examples()


def _clean_env() -> dict:
    """The caller's environment without ferroflow's settings (a launcher's cluster,
    a batch size), so every example runs as a user's plain ``python job.py`` would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERROFLOW_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONPATH", None)
    return env


def _normalize(text: str) -> List[str]:
    return [line.rstrip() for line in text.strip("\n").split("\n")] if text.strip() else []


def test_the_guide_has_examples_with_output():
    assert len(EXAMPLES) >= 20, "docs/event_time.md lost its examples"
    assert sum(e.expected is not None for e in EXAMPLES) >= 15


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"line{e.line}" for e in EXAMPLES])
def test_example_runs_and_prints_what_the_guide_shows(example, tmp_path):
    script = tmp_path / f"example_line{example.line}.py"
    script.write_text(example.code, encoding="utf-8")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    r = subprocess.run([PYTHON, str(driver), str(script)], cwd=str(tmp_path), env=_clean_env(),
                       capture_output=True, text=True, timeout=120)
    where = f"docs/event_time.md:{example.line} ({example.heading})"
    assert r.returncode == 0, f"{where} failed:\n{r.stderr}"
    if example.expected is not None:
        assert _normalize(r.stdout) == _normalize(example.expected), (
            f"{where} printed:\n{r.stdout}\nthe guide shows:\n{example.expected}")


def test_readme_and_architecture_link_the_guide():
    for name in ("README.md", os.path.join("docs", "architecture.md")):
        with open(os.path.join(ROOT, name), encoding="utf-8") as f:
            assert "event_time.md" in f.read(), f"{name} does not link docs/event_time.md"
