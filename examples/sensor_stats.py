"""Per-sensor temperature statistics per minute of event time, with pandas and NumPy
inside the functions.

    ferroflow run examples/sensor_stats.py [- --input CSV] [- --window-minutes N]

Reads ``time,sensor,celsius`` lines (ISO timestamps, somewhat out of order), parses
each time with pandas, and when a sensor's minute closes computes its mean, standard
deviation and 95th percentile with NumPy. Prints one line per sensor and window:
``(sensor, window start, readings, mean, std, p95)``.
"""

import argparse
import os

import numpy as np
import pandas as pd

from ferroflow import Duration, ProcessWindowFunction, StreamExecutionEnvironment, WatermarkStrategy
from ferroflow.window import TumblingEventTimeWindows

HERE = os.path.dirname(os.path.abspath(__file__))


def parse(line):
    """``2024-05-01T12:00:02Z,kitchen,20.9`` -> (epoch milliseconds, sensor, celsius)."""
    when, sensor, celsius = line.split(",")
    return (pd.Timestamp(when).value // 1_000_000, sensor, float(celsius))


class Stats(ProcessWindowFunction):
    """One sensor's readings of one window -> count, mean, standard deviation and 95th
    percentile, rounded to 0.01 degree."""

    def process(self, key, context, elements):
        celsius = np.array([reading[2] for reading in elements])
        start = pd.Timestamp(context.window().start, unit="ms").strftime("%H:%M")
        yield (key, start, len(celsius), round(float(celsius.mean()), 2), round(float(celsius.std()), 2),
               round(float(np.percentile(celsius, 95)), 2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", default=os.path.join(HERE, "data", "sensors.csv"),
                        help="a CSV file of time,sensor,celsius (default: the bundled readings)")
    parser.add_argument("--window-minutes", type=int, default=1, help="window size in minutes")
    args = parser.parse_args()

    env = StreamExecutionEnvironment.get_execution_environment()
    readings = (WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_seconds(30))
                .with_timestamp_assigner(lambda reading: reading[0]))
    (env.read_text_file(args.input)
        .filter(lambda line: line and not line.startswith("time,"))
        .map(parse)
        .assign_timestamps_and_watermarks(readings)
        .key_by(lambda reading: reading[1])
        .window(TumblingEventTimeWindows.of(Duration.of_minutes(args.window_minutes)))
        .process(Stats())
        .print())
    env.execute("sensor statistics")


if __name__ == "__main__":
    main()
