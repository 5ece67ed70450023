"""Failures in process functions and their state (issue 12, "Errors"), seen from
``ferroflow run`` at 1 worker, 2 threads (-w 2) and 2 processes (-p 2): the job exits 1
with one report naming the operator (and where the script made it), the key, the
record or the timer, and the user's traceback; misuses of state are one line, at the
start. The jobs are tests/cli_scripts/state_errors.py, each run with a timeout so a
hang fails the test."""

from __future__ import annotations

import json
import re

import pytest

from test_errors import PACKAGE_DIR, SCRIPTS, ferroflow_run, line_of

SCRIPT = SCRIPTS / "state_errors.py"
RAISE_LINE = line_of(SCRIPT, "# RAISE-LINE")
MODES = {"p1": [], "w2": ["-w", "2"], "p2": ["-p", "2"]}

# case -> (class in the operator's name, the user's raising frame, what the report says about the record or timer)
RAISING = {
    "keyed_element": ("KeyedElement", "process_element", "in process_element, for key 'kp':"),
    "plain_element": ("PlainElement", "process_element", None),
    "event_timer": ("EventTimer", "on_timer", "in on_timer (event-time timer at 4242), for key 'kp':"),
    "processing_timer": ("ProcessingTimer", "on_timer", "in on_timer (processing-time timer at 4242), for key 'kp':"),
    "co_element": ("CoElement", "process_element2", "in process_element2, for key 'kp':"),
    "broadcast_element": ("BroadcastElement", "process_element", "in process_element, for key 'kp':"),
    "reducing": ("Reducing", "user_reduce", "in process_element, for key 'kp':"),
    "aggregating": ("Aggregating", "add", "in process_element, for key 'kp':"),
    "open": ("OpenFails", "open", None),
}
ON_RECORD = {"keyed_element", "plain_element", "co_element", "broadcast_element", "reducing", "aggregating"}


def failed(case: str, mode: str):
    r = ferroflow_run("state_errors.py", *MODES[mode], "-", case, timeout=30.0)
    assert r.returncode == 1, r
    # At -p 2 the process whose worker failed reports it (a plain stream's record may be on either).
    head = r"ferroflow: process [01] of 2: " if mode == "p2" else "ferroflow: "
    assert re.match(head + "job 'state job' failed: ", r.stderr), r
    assert "panicked" not in r.stderr and "bug in ferroflow" not in r.stderr, r
    return r


def operator_site(case: str) -> str:
    hits = [i for i, t in enumerate(SCRIPT.read_text().splitlines(), 1) if t.endswith(f"# OP-LINE {case}")]
    assert len(hits) == 1, hits
    return f"(state_errors.py:{hits[0]})"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", RAISING)
def test_a_raising_process_function_names_operator_key_record_or_timer_and_traceback(case, mode):
    cls, frame, where = RAISING[case]
    r = failed(case, mode)
    first = r.stderr.splitlines()[0]
    assert f"process '{cls}' {operator_site(case)} raised an exception" in first, r
    if case in ON_RECORD:
        assert first.endswith("on record ('kp', 'POISON-17'):"), r
    else:
        assert "on record" not in first, r
    if where is not None:
        assert r.stderr.splitlines()[1] == where, r
    # The user's traceback, whole: from their function down to the raise, one exception.
    assert r.stderr.count("Traceback (most recent call last)") == 1, r
    assert f'state_errors.py", line {RAISE_LINE}, in explode' in r.stderr, r
    assert f", in {frame}\n" in r.stderr, r
    assert r.stderr.rstrip().endswith("UserBoom: user code failed in " + {"user_reduce": "reduce"}.get(frame, frame)), r
    assert "RuntimeError" not in r.stderr and PACKAGE_DIR not in r.stderr, r


STATE_ACCESS = {
    "map_state_key": ("MapStateKey", "# STATE-LINE map",
                      "TypeError: MapState key: keys must be str, int, float, bool, None, bytes or tuples of these; "
                      "got list ['a', 'list']"),
    "list_state_update": ("ListStateUpdate", "# STATE-LINE list", "TypeError: 'int' object is not iterable"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", STATE_ACCESS)
def test_a_refused_state_access_names_operator_key_record_and_the_call(case, mode):
    cls, marker, last = STATE_ACCESS[case]
    r = failed(case, mode)
    lines = r.stderr.splitlines()
    assert lines[0].endswith(f"process '{cls}' {operator_site(case)} raised an exception on record "
                             "('kp', 'POISON-17'):"), r
    assert lines[1] == "in process_element, for key 'kp':", r
    assert f'state_errors.py", line {line_of(SCRIPT, marker)}, in process_element' in r.stderr, r
    assert lines[-1] == last, r
    assert PACKAGE_DIR not in r.stderr, r


@pytest.mark.parametrize("mode", MODES)
def test_a_reduce_or_aggregate_function_raising_in_add_is_catchable_as_itself(mode):
    r = ferroflow_run("state_errors.py", *MODES[mode], "-", "catching", timeout=30.0)
    assert r.returncode == 0, r
    assert "('kp', ['user code failed in reduce', 'user code failed in add'])" in r.stdout, r


START = {
    "plain_map_state": ("map 'MapWithState'", "get_state(ValueStateDescriptor('count')): state is only available "
                        "on a keyed stream (a function applied after key_by())", "MapWithState", "open"),
    "plain_process_state": ("process 'PlainWithState'", "get_state(ValueStateDescriptor('count')): state is only "
                            "available on a keyed stream (a function applied after key_by())", "PlainWithState",
                            "open"),
    "broadcast_keyed_state": ("process 'BroadcastWithKeyedState'", "get_state(ValueStateDescriptor('count')): "
                              "state is only available on a keyed stream (a function applied after key_by())",
                              "BroadcastWithKeyedState", "open"),
    "reused": ("process 'Reused'", "state name 'n' is used for a ValueState and for a ListState: each state of an "
               "operator needs its own name", "Reused", "open"),
}


def call_line(cls: str, method: str, n: int) -> int:
    """The line of the n-th state getter call in ``cls.method`` of the script."""
    lines = SCRIPT.read_text().splitlines()
    start = next(i for i, t in enumerate(lines) if t.startswith(f"class {cls}("))
    calls = [i + 1 for i in range(start, len(lines)) if "runtime_context.get_" in lines[i]]
    return calls[n]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", START)
def test_state_misuse_is_one_line_at_the_start(case, mode):
    op, message, cls, method = START[case]
    r = failed(case, mode)
    lines = [t for t in r.stderr.splitlines() if t.strip()]
    assert len(lines) == 1, r
    site = f"(state_errors.py:{call_line(cls, method, 1 if case == 'reused' else 0)}, in {method})"
    assert lines[0].endswith(f"{op} {operator_site(case)} raised an exception: {message} {site}"), r
    assert "on record" not in lines[0] and "Traceback" not in r.stderr, r
    assert r.stdout.strip() == "", r  # no record went through


@pytest.mark.parametrize("mode", MODES)
def test_a_state_name_reused_later_names_the_record_and_key(mode):
    r = failed("reused_later", mode)
    lines = r.stderr.splitlines()
    assert lines[0].endswith(f"process 'ReusedLater' {operator_site('reused_later')} raised an exception on "
                             "record ('kp', 'POISON-17'):"), r
    assert lines[1] == "in process_element, for key 'kp':", r
    assert lines[2].startswith("state name 'n' is used for a ValueState and for a MapState"), r
    assert "Traceback" not in r.stderr, r


# case -> (the record the report names, or None for a timer; the detail's first line; its last line)
CAUGHT = {
    "reducing": ("('kp', 'POISON-17')", "in process_element, for key 'kp':", "UserBoom: user code failed in reduce"),
    "aggregating": ("('kp', 'POISON-17')", "in process_element, for key 'kp':", "UserBoom: user code failed in add"),
    "map_state_key": ("('kp', 'POISON-17')", "in process_element, for key 'kp':", STATE_ACCESS["map_state_key"][2]),
    "event_timer": (None, "in on_timer (event-time timer at 4242), for key 'kp':",
                    "UserBoom: user code failed in on_timer"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CAUGHT)
def test_the_caught_job_exception_carries_operator_record_and_traceback(case, mode):
    """The in-process API: ``JobExecutionException``'s attributes, as a script catching
    it around ``env.execute()`` reads them (at -p 2, in the process whose worker failed;
    the other reports the lost peer)."""
    record, first, last = CAUGHT[case]
    r = ferroflow_run("state_errors.py", *MODES[mode], "-", case, "--catch", timeout=30.0)
    assert r.returncode == 0, r
    reports = [json.loads(t) for t in r.stdout.splitlines() if t.startswith("{")]
    udf = [e for e in reports if e["kind"] == "udf"]
    assert len(udf) == 1 and len(reports) == (2 if mode == "p2" else 1), r
    e = udf[0]
    assert e["type"] == "JobExecutionException", e
    assert e["operator"] == f"process '{RAISING.get(case, STATE_ACCESS.get(case))[0]}' {operator_site(case)}", e
    assert e["record"] == record, e
    detail = e["detail"].splitlines()
    assert detail[0] == first and detail[1] == "Traceback (most recent call last):" and detail[-1] == last, e
    assert e["message"].endswith(e["detail"]) and e["detail"].count("Traceback") == 1, e
