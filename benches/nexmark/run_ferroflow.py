"""One Nexmark query on ferroflow, output discarded: the job the benchmark times.

    ferroflow run [-p 2] benches/nexmark/run_ferroflow.py q1 --events 1000000
    ferroflow run [-p 2] benches/nexmark/run_ferroflow.py q1 --path events.jsonl
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ferroflow import StreamExecutionEnvironment
from ferroflow.connectors.nexmark import NexmarkSource
from ferroflow.functions import DiscardingSink

import ferroflow_queries as queries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("query", choices=sorted(queries.QUERIES))
    ap.add_argument("--events", type=int, default=1_000_000, help="native source: how many events")
    ap.add_argument("--path", help="read this JSON-lines file (gen.py, through NexmarkSource.from_json_lines) "
                                    "instead of the native source")
    args = ap.parse_args()
    env = StreamExecutionEnvironment.get_execution_environment()
    queries.build(env, args.query, source=NexmarkSource(args.events), path=args.path).add_sink(DiscardingSink())
    env.execute(f"nexmark {args.query}")


if __name__ == "__main__":
    main()
