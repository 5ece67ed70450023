"""A job whose user function fails on one record.

    ferroflow run failing_udf.py - OPERATOR [PARALLELISM] [--catch] [--huge] [--input=KIND]

OPERATOR picks where the failure is: map, flat_map, flat_map_generator, filter,
key_by, reduce, window_reduce, window_apply, sink, source_run, generator.
--catch: catch ferroflow.JobExecutionException around env.execute() and print its
attributes as JSON on stdout (the in-process API), then exit 0.
--huge: the poisoned record is a very long string (its repr must be truncated).
--input=KIND: list (default), endless (an endless iterator), endless_source (a
SourceFunction that collects forever), sequence (generate_sequence over 10**15 numbers,
read by every worker). The failure must stop the job however much input is left.
"""

import itertools
import json
import os
import sys

from ferroflow import (JobExecutionException, ReduceFunction, SinkFunction, SourceFunction,
                       StreamExecutionEnvironment, WindowFunction)

args = sys.argv[1:]
op = args[0]
parallelism = int(args[1]) if len(args) > 1 and args[1].isdigit() else 1
catch = "--catch" in args
huge = "--huge" in args
inputs = [a.split("=", 1)[1] for a in args if a.startswith("--input=")]
input_kind = inputs[0] if inputs else "list"
endless = input_kind != "list"

POISON = "POISON-" + "x" * 100_000 if huge else "POISON-17"


class UserBoom(Exception):
    pass


def explode(where, value):
    raise UserBoom(f"user code failed in {where}")  # RAISE-LINE


def records():
    """r0, r1, ..., with POISON as the 5th record; endless if asked."""
    counter = itertools.count() if endless else range(10)
    for i in counter:
        yield POISON if i == 4 else f"r{i}"


def user_map(value):
    if value == POISON:
        explode("user_map", value)
    return value


def user_flat_map(value):
    if value == POISON:
        explode("user_flat_map", value)
    return [value]


def user_flat_map_generator(value):
    yield value
    if value == POISON:
        explode("user_flat_map_generator", value)


def user_filter(value):
    if value == POISON:
        explode("user_filter", value)
    return True


def user_key(value):
    if value == POISON:
        explode("user_key", value)
    return value[:2]


class UserReduce(ReduceFunction):
    def reduce(self, a, b):
        if b == POISON or a == POISON:
            explode("UserReduce.reduce", b)
        return a + b


def user_window_reduce(a, b):
    if b == POISON or a == POISON:
        explode("user_window_reduce", b)
    return a


class UserWindowApply(WindowFunction):
    def apply(self, key, window, values):
        if POISON in values:
            explode("UserWindowApply.apply", values)
        return values


class UserSink(SinkFunction):
    def invoke(self, value):
        if value == POISON:
            explode("UserSink.invoke", value)


class UserSource(SourceFunction):
    def run(self, ctx):
        for value in records():
            if value == POISON:
                explode("UserSource.run", value)
            ctx.collect(value)


class EndlessSource(SourceFunction):
    def run(self, ctx):
        for value in records():
            ctx.collect(value)


def user_generator():
    for value in records():
        if value == POISON:
            explode("user_generator", value)
        yield value


env = StreamExecutionEnvironment.get_execution_environment()
env.set_parallelism(parallelism)
if op == "source_run":
    stream = env.add_source(UserSource())
elif op == "generator":
    stream = env.from_collection(user_generator())
elif input_kind == "endless":
    stream = env.from_collection(records())
elif input_kind == "endless_source":
    stream = env.add_source(EndlessSource())
elif input_kind == "sequence":
    stream = env.generate_sequence(0, 10 ** 15).map(lambda i: POISON if i == 4 else f"r{i}")
else:
    stream = env.from_collection(list(records()))

if op == "map":
    out = stream.map(user_map)
elif op == "flat_map":
    out = stream.flat_map(user_flat_map)
elif op == "flat_map_generator":
    out = stream.flat_map(user_flat_map_generator)
elif op == "filter":
    out = stream.filter(user_filter)
elif op == "key_by":
    out = stream.key_by(user_key)
elif op == "reduce":
    out = stream.key_by(lambda v: "same").reduce(UserReduce())
elif op == "window_reduce":
    out = stream.key_by(lambda v: "same").count_window(3).reduce(user_window_reduce)
elif op == "window_apply":
    out = stream.key_by(lambda v: "same").count_window(3).apply(UserWindowApply())
elif op in ("sink", "source_run", "generator"):
    out = stream
else:
    raise SystemExit(f"unknown operator {op!r}")

if op == "sink":
    out.add_sink(UserSink())
else:
    out.add_sink(lambda value: None)


def report(line):
    """One line on stdout from every process (os.write: sys.stdout shows a -p run's lines
    outside a job once, from the first process)."""
    os.write(1, (line + "\n").encode())

if catch:
    try:
        env.execute("failing job")
    except JobExecutionException as e:
        report(json.dumps({"type": type(e).__name__, "message": str(e), "kind": e.kind, "operator": e.operator,
                          "record": e.record, "detail": e.detail, "worker": e.worker}))
    else:
        report(json.dumps({"type": None}))
else:
    env.execute("failing job")
