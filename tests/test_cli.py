"""The `ferroflow` launcher: commands, options, exit codes, sys.argv, imports, the
script entry points (top-level execute, main(), main(factory)) and several runs in one
process.

Every run is a subprocess with a timeout. The scripts live in tests/cli_scripts/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import ferroflow

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "cli_scripts"
BIN = Path(sys.executable).parent
FERROFLOW = str(BIN / "ferroflow") if (BIN / "ferroflow").exists() else str(HERE.parent / ".venv" / "bin" / "ferroflow")
PACKAGE_DIR = str(Path(ferroflow.__file__).resolve().parent)

ENV = {k: v for k, v in os.environ.items() if k not in ("FERROFLOW_DEBUG", "RUST_BACKTRACE", "PYTHONUNBUFFERED")}

THREE_RECORDS_OUT = "10\n20\n30\n"


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return f"<rc={self.returncode}\nstdout:\n{self.stdout[:3000]}\nstderr:\n{self.stderr[:3000]}>"


def run(cmd, cwd=SCRIPTS, timeout: float = 20.0) -> Result:
    try:
        p = subprocess.run([str(c) for c in cmd], cwd=str(cwd), env=ENV, capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{cmd} did not finish within {timeout} s (hang?); stdout={e.stdout!r} stderr={e.stderr!r}")
    return Result(p.returncode, p.stdout, p.stderr)


def ff(*args, cwd=SCRIPTS) -> Result:
    return run([FERROFLOW, *args], cwd=cwd)


def assert_clean(text: str) -> None:
    assert "Traceback" not in text, text
    assert "panicked" not in text and "RUST_BACKTRACE" not in text, text


# -- the 3-record job, three ways --------------------------------------------------------

def test_three_record_job_prints_its_lines():
    r = ff("run", "three_records.py")
    assert r.returncode == 0, r
    assert r.stdout == THREE_RECORDS_OUT, r
    assert r.stderr == "", r


def test_python_job_py_runs_the_same_engine_in_process():
    r = run([sys.executable, "three_records.py"])
    assert r.returncode == 0, r
    assert r.stdout == THREE_RECORDS_OUT, r
    assert r.stderr == "", r


def test_python_dash_m_ferroflow_run():
    r = run([sys.executable, "-m", "ferroflow", "run", str(SCRIPTS / "three_records.py")], cwd=HERE.parent)
    assert r.returncode == 0, r
    assert r.stdout == THREE_RECORDS_OUT, r


def test_python_dash_m_ferroflow_passes_exit_codes():
    r = run([sys.executable, "-m", "ferroflow", "frobnicate"])
    assert r.returncode == 2, r
    assert "unknown command 'frobnicate'" in r.stderr, r


# -- commands and options ----------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--help", "-h", "help"])
def test_help(flag):
    r = ff(flag)
    assert r.returncode == 0, r
    assert r.stdout.startswith("usage: ferroflow run SCRIPT"), r
    assert "--version" in r.stdout and "run SCRIPT" in r.stdout, r
    assert r.stderr == "", r


def test_no_arguments_is_a_usage_error_showing_the_usage():
    r = ff()
    assert r.returncode == 2, r
    assert "usage: ferroflow run SCRIPT" in r.stdout + r.stderr, r


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_run_help(flag):
    r = ff("run", flag)
    assert r.returncode == 0, r
    assert r.stdout.startswith("usage: ferroflow run SCRIPT [PATH ...] [OPTIONS] [- ARG ...]"), r
    # what the script gets, and the exit codes, are documented
    assert "sys.argv[1:]" in r.stdout, r
    assert "130" in r.stdout and "2 for a usage error" in r.stdout, r


def test_run_without_script_is_a_usage_error_showing_run_usage():
    r = ff("run")
    assert r.returncode == 2, r
    assert "usage: ferroflow run SCRIPT [PATH ...] [OPTIONS] [- ARG ...]" in r.stdout + r.stderr, r


def test_version():
    r = ff("--version")
    assert r.returncode == 0, r
    assert r.stdout == f"ferroflow {ferroflow.__version__}\n", r


@pytest.mark.parametrize("command", ["frobnicate", "--bogus", "execute"])
def test_unknown_command(command):
    r = ff(command, "three_records.py")
    assert r.returncode == 2, r
    assert r.stderr.startswith(f"ferroflow: unknown command '{command}'\n"), r
    assert "usage: ferroflow run SCRIPT" in r.stderr, r
    assert r.stdout == "", r


@pytest.mark.parametrize("option", ["--bogus", "-x", "--parallelism=2"])
def test_unknown_run_option(option):
    r = ff("run", option, "three_records.py")
    assert r.returncode == 2, r
    assert r.stderr == f"ferroflow run: unknown option '{option}'\n", r
    assert r.stdout == "", r  # the job did not run


def test_unknown_option_after_the_script_says_where_script_arguments_go():
    r = ff("run", "three_records.py", "--input", "x")
    assert r.returncode == 2, r
    assert r.stderr == "ferroflow run: unknown option '--input'; the script's own arguments go after a lone '-'\n", r


@pytest.mark.parametrize("args", [
    ["-w", "1", "three_records.py"],
    ["--workers=1", "three_records.py"],
    ["--connect-timeout", "5", "three_records.py", "-w", "1"],
    ["three_records.py", "-w", "1"],
], ids=["before", "before-inline", "both-sides", "after"])
def test_options_before_or_after_the_script(args):
    """`flink run -p 2 job.py` is what Flink users type: options go before the script
    as well as after it."""
    r = ff("run", *args)
    assert r.returncode == 0, r
    assert r.stdout == THREE_RECORDS_OUT, r
    assert r.stderr == "", r


def test_options_before_the_script_leave_the_arguments_after_the_separator_alone(tmp_path):
    script = SCRIPTS / "argv_and_imports.py"
    r = ff("run", "-w", "1", script, "-", "-p", "2", "-w", "x", "--", "y", cwd=tmp_path)
    assert r.returncode == 0, r
    assert json.loads(r.stdout.splitlines()[0])["argv"] == [str(script), "-p", "2", "-w", "x", "--", "y"], r


def test_options_without_a_script():
    r = ff("run", "-w", "2")
    assert r.returncode == 2, r
    assert r.stderr == "ferroflow run: no job script given (ferroflow run [OPTIONS] SCRIPT ...)\n", r


@pytest.mark.parametrize("args, phrase", [
    (["--connect-timeout", "-5"], "--connect-timeout takes seconds above 0"),
    (["--connect-timeout", "inf"], "--connect-timeout takes seconds above 0"),
    (["--connect-timeout", "nan"], "--connect-timeout takes seconds above 0"),
    (["--connect-timeout", "-inf"], "--connect-timeout takes seconds above 0"),
    (["--connect-timeout", "1e400"], "--connect-timeout takes seconds above 0"),
    (["--connect-timeout", "0"], "--connect-timeout takes seconds above 0"),
    (["--connect-timeout=soon"], "--connect-timeout takes seconds, got 'soon'"),
    (["--connect-timeout"], "--connect-timeout needs a value"),
    (["-p", "0"], "-p must be at least 1"),
    (["-p", "abc"], "-p takes a whole number, got 'abc'"),
    (["-p", "2.5"], "-p takes a whole number"),
    (["-w", "-1"], "-w must be at least 1"),
    (["-w", "9" * 30, "--oversubscribe"], "-w must be at most"),
    (["--process-id", "-1", "--addresses", "127.0.0.1:1,127.0.0.1:2"], "--process-id must be at least 0"),
    (["--process-id", "9" * 30, "--addresses", "127.0.0.1:1,127.0.0.1:2"], "is out of range for 2 addresses"),
], ids=["timeout-negative", "timeout-inf", "timeout-nan", "timeout-minus-inf", "timeout-overflow",
        "timeout-zero", "timeout-word", "timeout-missing", "p0", "p-word", "p-fraction", "w-negative", "w-huge",
        "process-id-negative", "process-id-huge"])
def test_bad_numbers_are_one_line_usage_errors(args, phrase):
    r = ff("run", "three_records.py", *args)
    assert r.returncode == 2, r
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("ferroflow run: "), r  # one line
    assert phrase in r.stderr, r
    assert r.stdout == "", r
    assert_clean(r.stderr)


@pytest.mark.parametrize("name, value", [("FERROFLOW_CONNECT_TIMEOUT", "nan"), ("FERROFLOW_CONNECT_TIMEOUT", "-1"),
                                         ("FERROFLOW_THREADS", "many")])
def test_bad_cluster_numbers_in_the_environment_say_which_variable(name, value):
    from ferroflow import _cluster

    environ = {"FERROFLOW_ADDRESSES": "127.0.0.1:1,127.0.0.1:2", "FERROFLOW_PROCESS_ID": "0",
               "FERROFLOW_SECRET": "3f1c9a7e5b2d4c6e8a0b1c2d3e4f5a6b", name: value}
    with pytest.raises(_cluster.ClusterConfigError, match=name):
        _cluster.settings_from_env(environ)


def test_missing_script(tmp_path):
    missing = tmp_path / "nope" / "job.py"
    r = ff("run", missing)
    assert r.returncode == 2, r
    assert r.stderr == f"ferroflow: no such file: {missing}\n", r
    assert r.stdout == ""


def test_script_that_is_a_directory(tmp_path):
    r = ff("run", tmp_path)
    assert r.returncode == 2, r
    assert r.stderr == f"ferroflow: not a file: {tmp_path}\n", r


def test_missing_extra_path(tmp_path):
    r = ff("run", "three_records.py", tmp_path / "missing_lib")
    assert r.returncode == 2, r
    assert f"no such file or folder: {tmp_path / 'missing_lib'}" in r.stderr, r
    assert r.stdout == "", r  # the job did not run
    assert_clean(r.stderr)


# -- sys.argv ------------------------------------------------------------------------------

@pytest.mark.parametrize("tail,expected", [
    ([], []),
    (["-"], []),
    (["--"], []),
    (["-", "--local"], ["--local"]),
    (["-", "--input", "two words.txt", "-v", "3"], ["--input", "two words.txt", "-v", "3"]),
    (["--", "--local", "x"], ["--local", "x"]),
    (["-", "a", "-", "--", "b"], ["a", "-", "--", "b"]),  # only the first separator counts
    (["--", "run", "--help"], ["run", "--help"]),
], ids=["none", "dash-only", "dashdash-only", "dash", "dash-many", "dashdash", "dash-twice", "looks-like-launcher"])
def test_script_arguments_after_separator(tmp_path, tail, expected):
    script = SCRIPTS / "argv_and_imports.py"
    r = ff("run", script, *tail, cwd=tmp_path)
    assert r.returncode == 0, r
    info = json.loads(r.stdout.splitlines()[0])
    assert info["argv"] == [str(script)] + expected, info


def test_script_arguments_with_relative_script_path():
    r = ff("run", "argv_and_imports.py", "-", "--local")
    assert r.returncode == 0, r
    assert json.loads(r.stdout.splitlines()[0])["argv"] == ["argv_and_imports.py", "--local"], r


# -- imports from the script's folder --------------------------------------------------------

def test_sibling_module_and_package_are_importable_from_any_cwd(tmp_path):
    # run from another folder: the script's own folder (not the cwd) must be importable,
    # in the script and in the functions the workers call
    r = ff("run", SCRIPTS / "argv_and_imports.py", cwd=tmp_path)
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    info = json.loads(lines[0])
    assert info["module"] == "sibling module" and info["package"] == "sibling package", info
    assert lines[1:] == ["'AB!AB!'"], r


def test_extra_paths_are_importable(tmp_path):
    lib = tmp_path / "lib"
    (lib / "extpkg").mkdir(parents=True)
    (lib / "extpkg" / "__init__.py").write_text("PREFIX = 'pkg:'\n")
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "extmod.py").write_text("def tag(v):\n    return 'mod:' + str(v)\n")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "job.py").write_text(textwrap.dedent("""\
        import extpkg, extmod
        from ferroflow import StreamExecutionEnvironment
        env = StreamExecutionEnvironment.get_execution_environment()
        env.from_elements(1).map(lambda v: extpkg.PREFIX + extmod.tag(v)).print()
        env.execute()
        """))
    r = ff("run", "jobs/job.py", "lib/extpkg", "more/extmod.py", "-", "x", cwd=tmp_path)
    assert r.returncode == 0, r
    assert r.stdout == "'pkg:mod:1'\n", r


# -- entry points ------------------------------------------------------------------------------

def test_script_with_main_only_is_called_once_with_its_arguments():
    r = ff("run", "main_only.py", "-", "--local", "x")
    assert r.returncode == 0, r
    assert r.stdout.count("main called") == 1, r
    assert 'main called ["--local", "x"]' in r.stdout, r
    assert r.stdout.splitlines()[1:] == ["'a-from-main'", "'b-from-main'"], r


def test_guarded_main_runs_exactly_once():
    r = ff("run", "guarded_main.py")
    assert r.returncode == 0, r
    assert r.stdout == "main called\n'guarded'\n", r


def test_guarded_main_that_runs_no_job_runs_exactly_once():
    # A talk-era script whose main() only prints its usage when called without
    # arguments: the launcher must not call main() a second time.
    r = ff("run", "guarded_main_no_job.py")
    assert r.stdout.count("usage: guarded_main_no_job.py") == 1, r
    assert r.returncode == 0, r


def test_main_with_factory():
    r = ff("run", "main_factory.py")
    assert r.returncode == 0, r
    assert r.stdout == "main called with factory: True\nenvironment: True\n9\n16\n", r


def test_main_is_not_called_when_the_script_ran_a_job():
    # same_name_a.py runs its job at top level and has a main() that raises
    r = ff("run", "same_name_a.py")
    assert r.returncode == 0, r
    assert sorted(l.split("> ", 1)[-1] for l in r.stdout.splitlines()) == ["'A:2'", "'A:4'", "'A:6'"], r


# -- script failures and exits ----------------------------------------------------------------

def test_script_exception_shows_the_user_traceback_only():
    r = ff("run", "script_error.py")
    assert r.returncode == 1, r
    line = sum(1 for _ in open(SCRIPTS / "script_error.py").read().split("# SCRIPT-RAISE-LINE")[0].splitlines())
    assert "Traceback (most recent call last)" in r.stderr, r
    assert f'script_error.py", line {line}, in load_config' in r.stderr, r
    assert r.stderr.rstrip().endswith(
        "ferroflow: script_error.py failed: ValueError: config is missing key 'input'"), r
    # the traceback starts in the user's script: no launcher machinery (runpy, ferroflow)
    assert PACKAGE_DIR not in r.stderr, r
    assert "runpy" not in r.stderr, r


@pytest.mark.parametrize("code,expected_rc,expected_err", [
    ("0", 0, ""), ("None", 0, ""), ("3", 3, ""), ("'fatal: bad input'", 1, "fatal: bad input\n"),
])
def test_sys_exit_in_script(tmp_path, code, expected_rc, expected_err):
    (tmp_path / "exits.py").write_text(f"import sys\nprint('before', flush=True)\nsys.exit({code})\n")
    r = ff("run", "exits.py", cwd=tmp_path)
    assert r.returncode == expected_rc, r
    assert r.stdout == "before\n", r
    assert r.stderr == expected_err, r


# -- several runs in one process --------------------------------------------------------------

DRIVER = textwrap.dedent("""\
    import json, sys
    from ferroflow.cli import run_script
    argv, path = list(sys.argv), list(sys.path)
    for name in sys.argv[1:]:
        print(f"=== {name}", flush=True)
        run_script(name)
        sys.stdout.flush()
    print("=== end", flush=True)
    print(json.dumps({"argv_restored": sys.argv == argv, "path_restored": sys.path == path}))
    """)


def test_run_script_several_scripts_with_same_named_classes_in_one_process():
    r = run([sys.executable, "-c", DRIVER, "same_name_a.py", "same_name_b.py", "same_name_a.py", "same_name_b.py"])
    assert r.returncode == 0, r
    sections = {}
    order = []
    current = None
    for line in r.stdout.splitlines():
        if line.startswith("=== "):
            current = f"{line[4:]}#{len(order)}"
            order.append(current)
            sections[current] = []
        else:
            sections[current].append(line.split("> ", 1)[-1])  # drop the worker prefix
    expected_a = ["'A:2'", "'A:4'", "'A:6'"]
    expected_b = ["'B:101'", "'B:102'", "'B:103'"]
    runs = [sorted(sections[k]) for k in order[:-1]]
    assert runs == [expected_a, expected_b, expected_a, expected_b], r
    tail = json.loads(sections[order[-1]][0])
    assert tail == {"argv_restored": True, "path_restored": True}, r


def test_run_script_then_cli_main_in_one_process_keeps_entry_points_apart():
    # main_only.py's main() must be called; guarded_main.py's only once; each sees
    # its own classes and constants.
    r = run([sys.executable, "-c", DRIVER, "main_only.py", "guarded_main.py", "main_only.py"])
    assert r.returncode == 0, r
    assert r.stdout.count("main called") == 3, r
    assert r.stdout.count("'a-from-main'") == 2 and r.stdout.count("'guarded'") == 1, r
