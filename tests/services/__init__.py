"""Real servers for the connector tests, each started on a free port of 127.0.0.1 by a
session fixture of its own module (listed in conftest's ``pytest_plugins``)."""

from typing import List


def dying_with_us(cmd: List[str]) -> List[str]:
    """``cmd`` run so that it gets SIGKILL when the process that started it ends, even
    by SIGKILL (Linux's parent-death signal, set by util-linux's ``setpriv`` just before
    it execs ``cmd``): a killed pytest leaves no server behind. The servers run in
    sessions of their own (not to get the terminal's Ctrl-C), so nothing else would
    stop them."""
    return ["setpriv", "--pdeathsig", "KILL", "--", *cmd]
