"""``OutputTag``: the name of a side output (as ``pyflink.datastream.output_tag``)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any

__all__ = ["OutputTag"]


class OutputTag:
    """Names a side output, e.g. the late records of a window:
    ``side_output_late_data(tag)``, then ``result.get_side_output(tag)``. Tags with the
    same id are the same tag; ``type_info`` (``ferroflow.typeinfo``) is the side output
    stream's type, as in PyFlink (e.g. ``Types.ROW(...)`` makes its records ``Row`` values)."""

    __slots__ = ("tag_id", "type_info")

    def __init__(self, tag_id: str, type_info: Any = None) -> None:
        if not isinstance(tag_id, str) or not tag_id:
            raise ValueError(f"OutputTag() takes a non-empty str id, got {tag_id!r}")
        self.tag_id = tag_id
        self.type_info = type_info

    def get_id(self) -> str:
        return self.tag_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutputTag) and other.tag_id == self.tag_id

    def __hash__(self) -> int:
        return hash(self.tag_id)

    def __repr__(self) -> str:
        return f"OutputTag({self.tag_id!r})"
