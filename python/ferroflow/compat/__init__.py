"""Placeholder: the talk-era compatibility layer is being written."""


def install() -> None:
    pass


def environment_factory():
    from ..environment import StreamExecutionEnvironment
    return StreamExecutionEnvironment
