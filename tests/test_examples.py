"""The examples run through `ferroflow run`, as a user would run them."""

import collections
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FERROFLOW = os.path.join(os.path.dirname(sys.executable), "ferroflow")
EXAMPLES = os.path.join(ROOT, "examples")


def run(*args, timeout=60):
    return subprocess.run([FERROFLOW, "run", *args], capture_output=True, text=True, timeout=timeout)


def fib_rounds(x, y, target=100):
    """The number of Fibonacci steps until the value reaches the target."""
    n = 0
    while y < target:
        x, y, n = y, x + y, n + 1
    return n


def test_word_count_counts_every_word_of_the_bundled_text():
    r = run(os.path.join(EXAMPLES, "word_count.py"))
    assert r.returncode == 0, r.stderr
    with open(os.path.join(EXAMPLES, "data", "hamlet.txt"), encoding="utf-8") as f:
        expected = collections.Counter(w for line in f for w in line.lower().split())
    counted = collections.Counter()
    for line in r.stdout.splitlines():
        count, word = eval(line)  # the example prints (count, word) tuples
        counted[word] += count
    assert counted == expected
    assert counted["the"] == 19 and counted["to"] == 13


def test_word_count_reads_a_folder_given_after_the_dash(tmp_path):
    (tmp_path / "a.txt").write_text("b a\n")
    (tmp_path / "b.txt").write_text("a\n")
    r = run(os.path.join(EXAMPLES, "word_count.py"), "-", "--input", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == ["(1, 'b')", "(2, 'a')"]


def test_fibonacci_gives_the_talks_results(tmp_path):
    pairs = [(1, 1), (2, 3), (10, 20), (49, 49), (1, 49), (5, 8), (0, 1), (7, 0), (50, 50), (99, 1)]
    source = tmp_path / "pairs.txt"
    source.write_text("".join(f"{x}, {y}\n" for x, y in pairs))
    r = run(os.path.join(EXAMPLES, "fibonacci.py"), "-", "--input", str(source))
    assert r.returncode == 0, r.stderr
    assert collections.Counter(r.stdout.splitlines()) == collections.Counter(
        f"(({x}, {y}), {fib_rounds(x, y)})" for x, y in pairs)
    assert "((1, 1), 10)" in r.stdout and "((10, 20), 4)" in r.stdout and "((49, 49), 2)" in r.stdout


def test_fibonacci_generated_pairs():
    r = run(os.path.join(EXAMPLES, "fibonacci.py"), "-", "--count", "30")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 30
    for line in lines:
        (x, y), n = eval(line)
        assert 1 <= x < 50 and 1 <= y < 50 and n == fib_rounds(x, y)


def test_a_pair_that_never_converges_is_dropped_after_the_wait_and_the_job_ends(tmp_path):
    source = tmp_path / "pairs.txt"
    source.write_text("0, 0\n1, 1\n")
    r = run(os.path.join(EXAMPLES, "fibonacci.py"), "-", "--input", str(source), "--max-wait-ms", "300", timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["((1, 1), 10)", "1 pair(s) did not reach 100 within 300 ms"]
    assert re.search(r"warning: iterate .*still circulating 300 ms after the input ended", r.stderr)


def test_sensor_stats_computes_with_numpy_and_pandas_inside_the_functions():
    r = run(os.path.join(EXAMPLES, "sensor_stats.py"))
    assert r.returncode == 0, r.stderr
    # The same statistics in plain Python: per sensor and minute of the reading's time.
    readings = collections.defaultdict(list)
    with open(os.path.join(EXAMPLES, "data", "sensors.csv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            when, sensor, celsius = line.strip().split(",")
            readings[(sensor, when[11:16])].append(float(celsius))
    printed = {}
    for line in r.stdout.splitlines():
        sensor, start, count, mean, std, p95 = eval(line)  # the example prints tuples of plain values
        assert type(mean) is float and type(p95) is float, line  # not numpy scalars
        printed[(sensor, start)] = (count, mean, std, p95)
    assert printed.keys() == readings.keys() and len(printed) == 18
    for key, values in readings.items():
        count, mean, std, p95 = printed[key]
        assert count == len(values) == 6, key
        assert abs(mean - statistics.fmean(values)) < 0.006, key
        assert abs(std - statistics.pstdev(values)) < 0.006, key
        assert abs(p95 - statistics.quantiles(values, n=20, method="inclusive")[18]) < 0.006, key
