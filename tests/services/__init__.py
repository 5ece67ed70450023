"""Real servers for the connector tests, each started on a free port of 127.0.0.1 by a
session fixture of its own module (listed in conftest's ``pytest_plugins``)."""
