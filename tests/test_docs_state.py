"""Every example of docs/state.md runs, and prints what the guide says it prints.

Same rules as tests/test_docs_event_time.py (whose block reader and runner this reuses):
each ```python block is a complete script run in a fresh interpreter from a temporary
directory; a ```text block right after it is its expected standard output.

Examples that key a stream or call ``process()`` need issue 12's wiring of keyed state,
process functions and timers into the engine and the binding. In a build without it
they fail, and their failure says so first ("needs issue 12's wiring"): they are
not skipped, so they pass only once the feature works.
"""

from __future__ import annotations

import os
import subprocess
from typing import List

import pytest
from test_docs_event_time import DRIVER, PYTHON, ROOT, Example, _blocks, _clean_env, _normalize

from ferroflow import KeyedStream

GUIDE = os.path.join(ROOT, "docs", "state.md")

#: Whether this build has KeyedStream.process (the wiring of issue 12's state and timers).
WIRED = hasattr(KeyedStream, "process")


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
            if next_lang == "text" and all(not s.strip() for s in lines[after:next_line - 1]):
                expected = next_body
        found.append(Example(line, heading, body, expected))
    return found


EXAMPLES = examples()


def needs_wiring(example: Example) -> bool:
    """Whether the example uses keyed state or process functions (issue 12's wiring)."""
    return ".key_by(" in example.code or ".process(" in example.code


def test_the_guide_has_examples_with_output():
    assert len(EXAMPLES) >= 9, "docs/state.md lost its examples"
    assert sum(e.expected is not None for e in EXAMPLES) >= 9
    # Each part of the guide is shown by a running example.
    code = "\n".join(e.code for e in EXAMPLES)
    for used in ("get_state(", "get_list_state(", "get_map_state(", "get_reducing_state(",
                 "get_aggregating_state(", "enable_time_to_live(", "register_event_time_timer(",
                 "delete_event_time_timer(", "register_processing_time_timer(", "ProcessingTime(",
                 "Watermark(", "get_side_output(", "time_domain()", "get_current_key()",
                 "get_broadcast_state(", "apply_to_keyed_state("):
        assert used in code, f"no example of docs/state.md uses {used}"


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"line{e.line}" for e in EXAMPLES])
def test_example_runs_and_prints_what_the_guide_shows(example, tmp_path):
    script = tmp_path / f"example_line{example.line}.py"
    script.write_text(example.code, encoding="utf-8")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    r = subprocess.run([PYTHON, str(driver), str(script)], cwd=str(tmp_path), env=_clean_env(), check=False,
                       capture_output=True, text=True, timeout=120)
    where = f"docs/state.md:{example.line} ({example.heading})"
    if not WIRED and needs_wiring(example):
        where = ("needs issue 12's wiring (KeyedStream.process, keyed state and timers in the engine), "
                 f"absent from this build: {where}")
    assert r.returncode == 0, f"{where} failed:\n{r.stderr}"
    if example.expected is not None:
        assert _normalize(r.stdout) == _normalize(example.expected), (
            f"{where} printed:\n{r.stdout}\nthe guide shows:\n{example.expected}")

