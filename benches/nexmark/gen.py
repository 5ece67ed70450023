"""Writes the native Nexmark source's events to a JSON-lines file, once, so every system
(ferroflow's file source, the plain-Python reference, Bytewax, PyFlink) reads one event
stream.

    python benches/nexmark/gen.py --events 1000000 --out /tmp/nexmark-1m.jsonl

One object per line, ``{"type": "person"|"auction"|"bid", <the record's fields>}``
(``ferroflow.connectors.nexmark.event_to_dict``), in the generator's order (event ids
ascending).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Optional

from ferroflow import StreamExecutionEnvironment
from ferroflow.connectors.nexmark import NexmarkSource, event_to_dict
from ferroflow.watermarks import WatermarkStrategy


def to_json(event: object) -> str:
    return json.dumps(event_to_dict(event), separators=(",", ":"))  # type: ignore[arg-type]


def generate(path: str, source: NexmarkSource) -> None:
    """Writes ``source``'s events to ``path`` (replaced if it exists)."""
    if source.events is None:
        raise ValueError("gen: the source must be bounded (events=N)")
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    env.from_source(source, WatermarkStrategy.no_watermarks(), "nexmark").map(to_json).write_as_text(path)
    env.execute("nexmark gen")


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--out-of-order-group-size", type=int, default=1)
    args = ap.parse_args(argv)
    generate(args.out, NexmarkSource(args.events, out_of_order_group_size=args.out_of_order_group_size))
    print(f"wrote {args.events} events to {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
