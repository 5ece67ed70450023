"""Launcher behaviour beyond argument handling: module isolation between scripts run
in one process, and a reader that closes the pipe."""

import os
import subprocess
import sys

from ferroflow.cli import run_script

HERE = os.path.dirname(os.path.abspath(__file__))
FERROFLOW = os.path.join(os.path.dirname(sys.executable), "ferroflow")


def test_scripts_in_one_process_get_their_own_sibling_modules():
    outputs = []
    for name in ("a", "b", "a"):
        script = os.path.join(HERE, "isolation", name, "job.py")
        run_script(script)
        with open(script + ".out") as f:
            outputs.append(f.read())
        os.unlink(script + ".out")
    assert outputs == ["a", "b", "a"]
    assert "utils" not in sys.modules


def test_a_closed_pipe_ends_quietly(tmp_path):
    job = tmp_path / "many.py"
    job.write_text(
        "from ferroflow import StreamExecutionEnvironment\n"
        "env = StreamExecutionEnvironment.get_execution_environment()\n"
        "env.generate_sequence(1, 2_000_000).print()\n"
        "env.execute()\n"
    )
    proc = subprocess.Popen([FERROFLOW, "run", str(job)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 141
    assert first == b"1\n"
    assert err == ""
