"""Keyed state's declarations (``ferroflow.state``, PyFlink's names): descriptors and the
TTL builder validate their arguments and keep what they were given; the state
interfaces are abstract with PyFlink's method sets; state getters on a runtime context
outside a keyed stream fail with one clear line. The engine side comes later."""

from __future__ import annotations

import datetime
import inspect

import pytest
from conftest import make_env, run

import ferroflow
from ferroflow import JobExecutionException, MapFunction, Time
from ferroflow.functions import AggregateFunction, KeyedProcessFunction, ReduceFunction
from ferroflow.output_tag import OutputTag
from ferroflow.state import (AggregatingState, AggregatingStateDescriptor, ListState, ListStateDescriptor,
                             MapState, MapStateDescriptor, ReducingState, ReducingStateDescriptor, StateTtlConfig,
                             ValueState, ValueStateDescriptor)
from ferroflow.time_domain import TimeDomain
from ferroflow.timerservice import TimerService
from ferroflow.windowing import Duration


class Sum(ReduceFunction):
    def reduce(self, value1, value2):
        return value1 + value2


class Avg(AggregateFunction):
    def create_accumulator(self):
        return (0, 0)

    def add(self, value, accumulator):
        return (accumulator[0] + value, accumulator[1] + 1)

    def get_result(self, accumulator):
        return accumulator[0] / accumulator[1]


def test_descriptors_keep_name_type_info_and_functions():
    assert ValueStateDescriptor("v", "LONG").get_name() == "v"
    assert ValueStateDescriptor("v", "LONG").type_info == "LONG"
    assert ValueStateDescriptor("v").type_info is None  # type info is optional here
    m = MapStateDescriptor("m", "STRING", "INT")
    assert (m.key_type_info, m.value_type_info) == ("STRING", "INT")
    assert ListStateDescriptor("l", "INT").elem_type_info == "INT"
    f = Sum()
    assert ReducingStateDescriptor("r", f, "INT").get_reduce_function() is f
    plain = lambda a, b: a + b
    assert ReducingStateDescriptor("r", plain).get_reduce_function() is plain
    agg = Avg()
    assert AggregatingStateDescriptor("a", agg, "TUPLE").get_agg_function() is agg


@pytest.mark.parametrize("name", ["", None, 3])
def test_a_descriptor_needs_a_name(name):
    with pytest.raises(ValueError, match="non-empty str name"):
        ValueStateDescriptor(name)


def test_reducing_and_aggregating_descriptors_check_their_functions():
    with pytest.raises(TypeError, match="ReduceFunction"):
        ReducingStateDescriptor("r", 42)
    with pytest.raises(TypeError, match="get_result"):
        class Half(AggregateFunction):
            def create_accumulator(self):
                return 0

            def add(self, value, accumulator):
                return accumulator + value
        AggregatingStateDescriptor("a", Half())


def test_ttl_builder_defaults_are_flinks():
    config = StateTtlConfig.new_builder(Time.seconds(10)).build()
    assert config.get_ttl() == Time.milliseconds(10_000)
    assert config.get_update_type() is StateTtlConfig.UpdateType.OnCreateAndWrite
    assert config.get_state_visibility() is StateTtlConfig.StateVisibility.NeverReturnExpired
    assert config.get_ttl_time_characteristic() is StateTtlConfig.TtlTimeCharacteristic.ProcessingTime
    assert config.is_enabled()
    cleanup = config.get_cleanup_strategies()
    assert cleanup.is_cleanup_in_background() and not cleanup.in_full_snapshot()


def test_ttl_builder_settings():
    config = (StateTtlConfig.new_builder(Duration.of_millis(50)).update_ttl_on_read_and_write()
              .return_expired_if_not_cleaned_up().cleanup_full_snapshot().cleanup_incrementally(7, True)
              .cleanup_in_rocksdb_compact_filter(1000).use_processing_time().disable_cleanup_in_background()
              .build())
    assert config.get_ttl().to_milliseconds() == 50
    assert config.get_update_type() is StateTtlConfig.UpdateType.OnReadAndWrite
    assert config.get_state_visibility() is StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp
    cleanup = config.get_cleanup_strategies()
    assert cleanup.in_full_snapshot() and not cleanup.is_cleanup_in_background()
    incremental = cleanup.get_incremental_cleanup_strategy()
    assert (incremental.get_cleanup_size(), incremental.run_cleanup_for_every_record()) == (7, True)
    assert cleanup.get_rocksdb_compact_filter_cleanup_strategy().get_query_time_after_num_entries() == 1000
    back = (StateTtlConfig.new_builder(datetime.timedelta(seconds=1))
            .set_update_type(StateTtlConfig.UpdateType.OnReadAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired).set_ttl(Time.minutes(2)).build())
    assert back.get_ttl() == Time.minutes(2)
    assert back.get_update_type() is StateTtlConfig.UpdateType.OnReadAndWrite


@pytest.mark.parametrize("ttl", [0, -5, Time.seconds(0), "10s", None])
def test_ttl_must_be_a_positive_span(ttl):
    with pytest.raises((ValueError, TypeError), match="time to live"):
        StateTtlConfig.new_builder(ttl)


def test_ttl_builder_rejects_bad_settings():
    builder = StateTtlConfig.new_builder(Time.seconds(1))
    with pytest.raises(ValueError, match="cleanup size"):
        builder.cleanup_incrementally(0, False)
    with pytest.raises(TypeError, match="run_cleanup_for_every_record"):
        builder.cleanup_incrementally(5, "yes")
    with pytest.raises(TypeError, match="UpdateType"):
        builder.set_update_type("OnReadAndWrite")
    with pytest.raises(ValueError, match="Disabled"):
        builder.set_update_type(StateTtlConfig.UpdateType.Disabled)
    with pytest.raises(TypeError, match="StateVisibility"):
        builder.set_state_visibility(True)


def test_enable_time_to_live_takes_a_config():
    d = ValueStateDescriptor("v")
    assert d.get_ttl_config() is None
    config = StateTtlConfig.new_builder(Time.hours(1)).build()
    d.enable_time_to_live(config)
    assert d.get_ttl_config() is config
    with pytest.raises(TypeError, match="StateTtlConfig"):
        d.enable_time_to_live(Time.hours(1))


@pytest.mark.parametrize("cls, methods", [
    (ValueState, {"value", "update", "clear"}),
    (ListState, {"get", "add", "add_all", "update", "clear"}),
    (MapState, {"get", "put", "put_all", "remove", "contains", "keys", "values", "items", "is_empty", "clear"}),
    (ReducingState, {"get", "add", "clear"}),
    (AggregatingState, {"get", "add", "clear"}),
])
def test_state_interfaces_are_abstract_with_pyflinks_methods(cls, methods):
    assert cls.__abstractmethods__ == methods
    with pytest.raises(TypeError):
        cls()


def test_map_state_dunder_methods_go_through_the_abstract_ones():
    class DictState(MapState):
        def __init__(self):
            self.d = {}

        def get(self, key):
            return self.d.get(key)

        def put(self, key, value):
            self.d[key] = value

        def put_all(self, dict_value):
            self.d.update(dict_value)

        def remove(self, key):
            self.d.pop(key, None)

        def contains(self, key):
            return key in self.d

        def items(self):
            return self.d.items()

        def keys(self):
            return self.d.keys()

        def values(self):
            return self.d.values()

        def is_empty(self):
            return not self.d

        def clear(self):
            self.d.clear()

    s = DictState()
    s["a"] = 1
    assert "a" in s and s["a"] == 1 and list(s) == ["a"]
    del s["a"]
    assert s.is_empty()


def test_timer_service_and_time_domain():
    assert {m for m in TimerService.__abstractmethods__} == {
        "current_processing_time", "current_watermark", "register_processing_time_timer",
        "register_event_time_timer", "delete_processing_time_timer", "delete_event_time_timer"}
    assert [d.name for d in TimeDomain] == ["EVENT_TIME", "PROCESSING_TIME"]
    assert set(KeyedProcessFunction.OnTimerContext.__abstractmethods__) == {
        "timestamp", "timer_service", "get_current_key", "time_domain"}


def test_output_tag_lives_in_its_pyflink_module_and_is_the_one_windows_use():
    assert ferroflow.OutputTag is OutputTag
    assert OutputTag("late", "INT").type_info == "INT"
    assert OutputTag("late") == OutputTag("late")


def test_names_are_exported_like_the_others():
    for name in ("KeyedProcessFunction", "ProcessFunction", "CoMapFunction", "CoFlatMapFunction", "CoProcessFunction",
                 "KeyedCoProcessFunction", "BroadcastProcessFunction", "KeyedBroadcastProcessFunction",
                 "ProcessJoinFunction", "JoinFunction", "CoGroupFunction", "ValueStateDescriptor", "StateTtlConfig",
                 "TimeDomain", "TimerService"):
        assert name in ferroflow.__all__ and hasattr(ferroflow, name)


def test_process_function_methods_have_pyflinks_signatures():
    assert list(inspect.signature(KeyedProcessFunction.process_element).parameters) == ["self", "value", "ctx"]
    assert list(inspect.signature(KeyedProcessFunction.on_timer).parameters) == ["self", "timestamp", "ctx"]


class UsesState(MapFunction):
    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count", "LONG"))

    def map(self, value):
        return value


@pytest.mark.parametrize("getter", ["get_state", "get_list_state", "get_map_state", "get_reducing_state",
                                    "get_aggregating_state"])
def test_state_getters_fail_clearly_until_keyed_state_exists(getter):
    from ferroflow._plan import RuntimeContext

    with pytest.raises(ferroflow.FerroflowError, match="only available on a keyed stream"):
        getattr(RuntimeContext(0, 1), getter)(ValueStateDescriptor("x"))


def test_state_outside_a_keyed_stream_fails_the_job_naming_the_operator():
    env = make_env(1)
    with pytest.raises(JobExecutionException) as info:
        run(env, env.from_collection([1]).map(UsesState()))
    assert "UsesState" in info.value.operator
    assert "only available on a keyed stream" in str(info.value) + info.value.detail
