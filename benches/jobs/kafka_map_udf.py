"""The transform both Kafka → map → Kafka jobs run on each value (benches/kafka.py)."""


def transform(value: str) -> str:
    """An upper-cased copy with the length appended: a little work per record."""
    return f"{value.upper()}|{len(value)}"
