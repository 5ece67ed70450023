"""Instructions per record of a keyed co-map on its two paths, for callgrind (not a
timing benchmark: the count is what compares). Run each variant at two sizes and take
the marginal, so start-up cancels:

    valgrind --tool=callgrind --callgrind-out-file=cg.VARIANT.N python benches/keyed_comap_cost.py VARIANT N

for N in 20000 and 60000 (2N records cross the co-map), per record =
(summary(60000) - summary(20000)) / 80000. Variants: ``plain`` (a stateless keyed
CoMapFunction: the fused co-transform), ``opened`` (the same with an ``open()`` of its
own: the keyed co-process operator through ``_process.KeyedCoStep``), ``dict`` (a count
per key in a dict on ``self``, cheap path) and ``state`` (the same count in ValueState).

Measured when KeyedCoStep landed (p=1, CPython 3.11): plain 3,946, opened 4,871
(+925), dict 4,915, state 6,111 (+1,196 over dict, +2,165 over plain).
"""
import sys
from ferroflow import StreamExecutionEnvironment, CoMapFunction
from ferroflow.state import ValueStateDescriptor

variant, n = sys.argv[1], int(sys.argv[2])


class Plain(CoMapFunction):          # stateless keyed co-map: the cheap co-transform
    def map1(self, v):
        return v

    def map2(self, v):
        return v


class Opened(Plain):                 # same work, open() of its own: the process operator + KeyedCoStep
    def open(self, rc):
        pass


class DictCount(CoMapFunction):      # a count per key in a dict, cheap path
    def __init__(self):
        self.c = {}

    def map1(self, v):
        n = self.c.get(v[0], 0) + 1
        self.c[v[0]] = n
        return n

    map2 = map1


class StateCount(CoMapFunction):     # the same count in ValueState, stateful path
    def open(self, rc):
        self.s = rc.get_state(ValueStateDescriptor("n"))

    def map1(self, v):
        n = (self.s.value() or 0) + 1
        self.s.update(n)
        return n

    map2 = map1


fn = {"plain": Plain, "opened": Opened, "dict": DictCount, "state": StateCount}[variant]()
env = StreamExecutionEnvironment.get_execution_environment()
env.set_parallelism(1)
a = env.generate_sequence(0, n - 1).map(lambda i: (i % 1000, i))
b = env.generate_sequence(0, n - 1).map(lambda i: (i % 1000, -i))
a.connect(b).key_by(lambda r: r[0], lambda r: r[0]).map(fn).add_sink(lambda x: None)
env.execute("cost")
