"""The word-count benchmark job for `ferroflow run` (any -p): the shared UDFs, a
running count per word, every update to a discarding sink.

    ferroflow run benches/jobs/wordcount_job.py [-p N] - INPUT
"""
import os
import sys

BENCH = os.environ.get("FERROFLOW_BENCH_DIR",
                       os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "bench"))
sys.path.insert(0, BENCH)

from ferroflow import DiscardingSink, StreamExecutionEnvironment  # noqa: E402
from wc_udfs import key_of, reduce_count, tokenize  # noqa: E402

env = StreamExecutionEnvironment.get_execution_environment()
env.read_text_file(sys.argv[1]).flat_map(tokenize).key_by(key_of).reduce(reduce_count).add_sink(DiscardingSink())
env.execute("word count")
