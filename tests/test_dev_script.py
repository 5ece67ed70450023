"""`./dev` itself: a failed build stops every command, with cargo's error, before any
test or example runs against an extension left over from an earlier build.

Each test runs a copy of `./dev` in a temporary folder whose `.venv` holds this
interpreter (so `import ferroflow._engine` still finds the current, stale-from-its-view
extension) and a `maturin` that fails the way a compile error does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CARGO_ERROR = "error[E0425]: cannot find value `x` in this scope"


@pytest.fixture
def dev_with_failing_build(tmp_path: Path) -> Path:
    """A copy of `./dev` whose build fails; returns the copy's path."""
    shutil.copy(ROOT / "dev", tmp_path / "dev")
    shutil.copy(ROOT / "requirements-dev.txt", tmp_path / "requirements-dev.txt")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    # The tools are "already installed": the stamp matches the pinned list.
    shutil.copy(ROOT / "requirements-dev.txt", tmp_path / ".venv" / ".requirements-dev.txt")
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "maturin").write_text(
        "#!/bin/sh\n"
        "echo '   Compiling ferroflow-python v0.1.0'\n"
        f"echo '{CARGO_ERROR}' >&2\n"
        "echo 'error: could not compile `ferroflow-python` (lib) due to 1 previous error' >&2\n"
        "exit 1\n")
    (bin_dir / "ferroflow").write_text("#!/bin/sh\necho 'the example ran' ; exit 0\n")
    for tool in ("python", "maturin", "ferroflow"):
        (bin_dir / tool).chmod(0o755)
    return tmp_path / "dev"


@pytest.mark.parametrize("command", ["build", "test", "example"])
def test_a_failed_build_fails_the_command_with_cargos_error(dev_with_failing_build: Path, command: str):
    r = subprocess.run(["bash", str(dev_with_failing_build), command], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, f"./dev {command} succeeded after a failed build:\n{r.stderr}"
    assert CARGO_ERROR in r.stderr
    assert "the engine did not build" in r.stderr
    # Nothing ran after the build: no cargo test, pytest or example.
    assert "cargo test" not in r.stderr and "pytest" not in r.stderr
    assert "the example ran" not in r.stdout
    # Progress lines stay filtered out.
    assert "Compiling" not in r.stderr
