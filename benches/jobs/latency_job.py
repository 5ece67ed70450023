"""The latency benchmark's job (run by ../latency.py):

    ferroflow run benches/jobs/latency_job.py - HOST PORT_IN PORT_OUT [--parallelism N]

socket_text_stream(HOST, PORT_IN) -> map(Stamp) -> write_to_socket(HOST, PORT_OUT).
Input lines are "SEQ SEND_NS"; the map parses them and re-serializes them with a
per-worker counter, "SEQ SEND_NS COUNT"; the sink appends the newline. The job ends
when the feeder closes its connection.
"""
import argparse

from ferroflow import MapFunction, SerializationSchema, StreamExecutionEnvironment


class Stamp(MapFunction):
    """A light UDF: parse the record, count it, re-serialize it."""

    def open(self, runtime_context):
        self.count = 0

    def map(self, line):
        seq, sent = line.split(" ", 1)
        self.count += 1
        return f"{int(seq)} {int(sent)} {self.count}"


class Line(SerializationSchema):
    def serialize(self, value):
        return (value + "\n").encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port_in", type=int)
    ap.add_argument("port_out", type=int)
    ap.add_argument("--parallelism", type=int, default=1)
    a = ap.parse_args()
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(a.parallelism)
    env.socket_text_stream(a.host, a.port_in).map(Stamp()).write_to_socket(a.host, a.port_out, Line())
    env.execute("latency")


if __name__ == "__main__":
    main()
