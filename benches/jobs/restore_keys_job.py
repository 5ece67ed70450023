"""The restore benchmark's job (benches/checkpoint.py): a rolling reduce over N distinct
keys, checkpointed to STORAGE every INTERVAL ms.

    ferroflow run benches/jobs/restore_keys_job.py [-s CHECKPOINT] - STORAGE --keys N [--only I,J] [--interval-ms 100]

With N > 0 the source emits ("k0000000", 1) .. for N keys, then keeps the job running
until the checkpoint two after the one in progress has completed, so the last checkpoint
holds every key (checkpoint c holds the records emitted before it was triggered). With
N = 0 the source emits nothing: started with `-s CHECKPOINT` the job only restores the
keys and ends, which is what the benchmark times. `--only I,J` emits just those keys'
records: a restored job then prints each one's count, 2 (untimed check that the keys
came back). The sink prints every count above 1, so the plan is the same for every
argument (a checkpoint restores only into the plan that wrote it).
"""
import argparse
import os
import time

from ferroflow import StreamExecutionEnvironment
from ferroflow.functions import SinkFunction, SourceFunction

#: How long the source waits for the checkpoints that cover every key.
WAIT_S = 120


def latest_checkpoint(storage):
    """The id of the newest complete checkpoint under `storage` (0 if none)."""
    ids = [int(n[4:]) for n in os.listdir(storage) if n.startswith("chk-") and n[4:].isdigit()
           and os.path.exists(os.path.join(storage, n, "_MANIFEST"))] if os.path.isdir(storage) else []
    return max(ids, default=0)


class DistinctKeys(SourceFunction):
    """N records with N distinct keys, then waits for the checkpoints that hold them all."""

    def __init__(self, keys, only, storage):
        self.keys, self.only, self.storage, self.running = keys, only, storage, True

    def run(self, ctx):
        for i in self.only if self.only is not None else range(self.keys):
            ctx.collect((f"k{i:07d}", 1))
        if self.only is not None or not self.keys:
            return
        # Checkpoint `last + 1` may have been triggered before the last records left the
        # source's buffer; `last + 2` is triggered after it completed, by then they had.
        target = latest_checkpoint(self.storage) + 2
        deadline = time.monotonic() + WAIT_S
        while self.running and latest_checkpoint(self.storage) < target:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no checkpoint chk-{target} under {self.storage} within {WAIT_S} s")
            time.sleep(0.01)

    def cancel(self):
        self.running = False


class PrintRepeats(SinkFunction):
    """Prints the counts above 1: none while the checkpoint is made, one per `--only`
    key after a restore."""

    def invoke(self, value, context):
        if value[1] > 1:
            print(value, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("storage")
    ap.add_argument("--keys", type=int, required=True)
    ap.add_argument("--only", help="comma-separated key indexes: emit just these")
    ap.add_argument("--interval-ms", type=int, default=100)
    a = ap.parse_args()
    only = None if a.only is None else [int(i) for i in a.only.split(",")]
    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(a.interval_ms)
    env.get_checkpoint_config().set_checkpoint_storage_dir(a.storage)
    (env.add_source(DistinctKeys(a.keys, only, a.storage), "distinct keys")
        .key_by(lambda rec: rec[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .add_sink(PrintRepeats()))
    env.execute("restore keys")


main()
