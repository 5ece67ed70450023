"""Partitioning (Flink's partitioners): rebalance, shuffle, rescale, forward, broadcast
and partition_custom, at 1 worker, 2 threads and 2 processes. Where each record lands
is seen through the worker index a rich function gets (``SubtaskTagger``)."""

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferroflow import JobExecutionException, MapFunction, Partitioner
from ferroflow.state import MapStateDescriptor
from conftest import JOB_SETTINGS, TWO_PROC, SubtaskTagger, bag, make_env, run


def worker_counts(tagged):
    return Counter(i for i, _ in tagged)


def skewed(env, n):
    """A parallel stream whose records all sit on worker 0 (a filter keeps worker 0's)."""
    tagged = env.generate_sequence(1, n).map(SubtaskTagger())
    return tagged.filter(lambda t: t[0] == 0).map(lambda t: t[1])


def test_rebalance_evens_out_a_skewed_stream(env, parallelism):
    out = run(env, skewed(env, 200).rebalance().map(SubtaskTagger()))
    counts = worker_counts(out)
    assert set(counts) == set(range(parallelism))
    # One sender dealing in turn: the workers' shares differ by at most one.
    assert max(counts.values()) - min(counts.values()) <= 1
    assert len({v for _, v in out}) == len(out)


def test_rebalance_deals_a_collection_round_robin(env, parallelism):
    out = run(env, env.from_collection(list(range(40))).rebalance().map(SubtaskTagger()))
    assert sorted(v for _, v in out) == list(range(40))
    assert worker_counts(out) == {i: 40 // parallelism for i in range(parallelism)}
    # Each worker gets every parallelism-th record, in order.
    for i in range(parallelism):
        mine = [v for w, v in out if w == i]
        assert all(b - a == parallelism for a, b in zip(mine, mine[1:])), mine


def test_shuffle_keeps_every_record_and_reaches_every_worker(env, parallelism):
    out = run(env, skewed(env, 300).shuffle().map(SubtaskTagger()))
    values = [v for _, v in out]
    assert len(values) == len(set(values))
    assert set(worker_counts(out)) == set(range(parallelism))  # odds of a miss: below 1e-40


def test_rescale_stays_within_the_process(env, parallelism):
    out = run(env, env.from_collection(list(range(30))).rescale().map(SubtaskTagger()))
    assert sorted(v for _, v in out) == list(range(30))
    if parallelism is TWO_PROC:
        # The collection is read in process 0, whose only worker is 0.
        assert worker_counts(out) == {0: 30}
    else:
        assert worker_counts(out) == {i: 30 // parallelism for i in range(parallelism)}


def test_rescale_of_a_parallel_stream_never_crosses_processes(env, parallelism):
    out = run(env, env.generate_sequence(1, 60).map(SubtaskTagger()).rescale().map(SubtaskTagger()))
    assert sorted(v for _, (_, v) in out) == list(range(1, 61))
    if parallelism is TWO_PROC:
        # One worker per process: each record stays on the worker that made it.
        assert all(after == before for after, (before, _) in out)
    else:
        assert set(worker_counts(out)) == set(range(parallelism))


def test_key_by_right_after_broadcast_partitions_by_key_only(env, parallelism):
    """As in Flink, the last partitioning before an operator decides: no duplicates."""
    words = ["a", "b", "a", "c", "a"]
    out = run(env, env.from_collection(words).map(lambda w: (w, 1)).broadcast().key_by(lambda t: t[0]).sum(1))
    assert len(out) == len(words)
    assert {w: max(n for x, n in out if x == w) for w, _ in out} == {"a": 3, "b": 1, "c": 1}


def test_forward_keeps_each_record_on_its_worker_and_in_order(env, parallelism):
    before = env.generate_sequence(1, 120).map(SubtaskTagger())
    out = run(env, before.forward().map(SubtaskTagger()))
    assert sorted(v for _, (_, v) in out) == list(range(1, 121))
    assert all(after == first for after, (first, _) in out)
    for i in range(parallelism):
        mine = [v for w, (_, v) in out if w == i]
        assert mine == sorted(mine)


def test_forward_to_another_parallelism_fails_naming_forward(env, parallelism):
    env.from_collection([1, 2, 3]).forward().map(lambda x: x).add_sink(lambda x: None)
    if parallelism == 1:
        env.execute()
        return
    with pytest.raises(JobExecutionException) as info:
        env.execute()
    text = str(info.value)
    assert "forward" in text and "test_api_partitioning.py" in text
    assert "as many workers as its input (1), not 2" in text
    assert "rebalance()" in text


def test_forward_to_a_sink_of_the_same_parallelism_is_fine(env, parallelism):
    out = run(env, env.from_collection(["a", "b"]).map(str.upper).set_parallelism(1).forward()
              .map(SubtaskTagger()).set_parallelism(1))
    assert sorted(out) == [(0, "A"), (0, "B")]


def test_broadcast_gives_every_worker_every_record_in_order(env, parallelism):
    out = run(env, env.from_collection(list(range(10))).broadcast().map(SubtaskTagger()))
    for i in range(parallelism):
        assert [v for w, v in out if w == i] == list(range(10))
    assert len(out) == 10 * parallelism


class Mutating(MapFunction):
    def map(self, value):
        value.append("x")
        return value


def test_broadcast_copies_are_each_workers_own(env, parallelism):
    """With object reuse off, a worker changing its broadcast copy leaves the others' alone."""
    out = run(env, env.from_collection([[1], [2]]).broadcast().map(Mutating()))
    assert sorted(out) == sorted([[1, "x"], [2, "x"]] * parallelism)


def test_broadcast_with_a_descriptor_makes_a_broadcast_stream(env):
    # To connect a stream to (tests/test_broadcast_state.py), not a stream of its own.
    from ferroflow.broadcast import BroadcastStream

    stream = env.from_collection([1]).broadcast(MapStateDescriptor("rules", None, None))
    assert isinstance(stream, BroadcastStream) and not hasattr(stream, "map")


class ByRemainder(Partitioner):
    def partition(self, key, num_partitions):
        return key % num_partitions


@pytest.mark.parametrize("partitioner", [lambda key, n: key % n, ByRemainder()], ids=["function", "Partitioner"])
def test_partition_custom_sends_each_record_where_the_partitioner_says(env, parallelism, partitioner):
    records = [("k", i) for i in range(30)]
    out = run(env, env.from_collection(records).partition_custom(partitioner, lambda r: r[1]).map(SubtaskTagger()))
    assert sorted(r for _, r in out) == records
    assert all(w == r[1] % parallelism for w, r in out)


def test_partition_custom_sees_the_readers_parallelism(env, parallelism):
    seen = []

    def partition(key, n):
        seen.append(n)
        return 0
    out = run(env, env.from_collection([1, 2, 3]).partition_custom(partition, lambda x: x)
              .map(SubtaskTagger()).set_parallelism(1))
    assert sorted(out) == [(0, 1), (0, 2), (0, 3)]
    assert set(seen) == {1}


@pytest.mark.parametrize("result, why", [(5, "returned 5, but there are"), (-1, "returned -1, but there are"),
                                         ("0", "must return an int, got str")])
def test_a_bad_partition_fails_naming_the_operator_and_the_record(env, parallelism, result, why):
    def partition(key, n):
        return result if key == "bad" else 0
    env.from_collection(["ok", "bad"]).partition_custom(partition, lambda x: x).map(lambda x: x) \
        .add_sink(lambda x: None)
    with pytest.raises(JobExecutionException) as info:
        env.execute()
    text = str(info.value)
    assert "partition_custom '" in text and ".partition' (test_api_partitioning.py:" in text and why in text
    assert "'bad'" in text


def test_partition_custom_checks_its_functions_at_the_call(env):
    stream = env.from_collection([1])
    with pytest.raises(TypeError):
        stream.partition_custom(42, lambda x: x)
    with pytest.raises(TypeError, match="pass an instance"):
        stream.partition_custom(ByRemainder, lambda x: x)


def test_a_partitioning_has_no_parallelism_of_its_own(env):
    with pytest.raises(TypeError, match="operator that reads it"):
        env.from_collection([1]).rebalance().set_parallelism(1)


@pytest.mark.parametrize("how", ["rebalance", "shuffle", "rescale", "broadcast"])
def test_partitioned_streams_feed_keyed_and_union_operators(env, parallelism, how):
    stream = getattr(env.from_collection(["a", "b", "a", "c"]), how)()
    copies = parallelism if how == "broadcast" else 1
    counts = stream.map(lambda w: (w, 1)).key_by(lambda t: t[0]).sum(1)
    out = run(env, counts.union(stream.map(lambda w: (w, 0))))
    finals = {}
    for w, n in out:
        finals[w] = max(finals.get(w, 0), n)
    assert finals == {"a": 2 * copies, "b": copies, "c": copies}
    assert bag(w for w, n in out if n == 0) == bag(["a", "b", "a", "c"] * copies)


@JOB_SETTINGS
@given(values=st.lists(st.integers(-1000, 1000), max_size=50), divisor=st.integers(1, 7))
def test_partition_custom_matches_a_model(parallelism, values, divisor):
    env = make_env(parallelism)
    stream = env.from_collection(values).partition_custom(lambda k, n: (k // divisor) % n, lambda x: x)
    out = run(env, stream.map(SubtaskTagger()))
    assert bag(v for _, v in out) == bag(values)
    assert all(w == (v // divisor) % parallelism for w, v in out)
    # One sender, and a worker's records stay in the order they were sent.
    for i in range(parallelism):
        assert [v for w, v in out if w == i] == [v for v in values if (v // divisor) % parallelism == i]
