//! Spreading a stream over the workers of the operator that reads it: Flink's
//! partitioners (`rebalance`, `shuffle`, `rescale`, `broadcast`, `partition_custom`),
//! and the rebalance the dataflow puts between a non-parallel source and a parallel
//! reader. (`forward` needs no operator: the reader takes its input where it is.)
//!
//! Two operators: a sender that picks each record's worker and packs one batch per
//! destination (encoding only what goes to another process), and a receiver behind the
//! exchange that routes those batches, which unpacks them.

use std::rc::Rc;

use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::InputCapability;
use timely::dataflow::Stream;

use crate::error::{ErrorKind, UdfError};
use crate::exchange::{encode_records, partition, unpack, Batch, Locality, Routed};
use crate::functions::Partitioner;
use crate::operators::driver::{self, Cx, Failure, OpInfo, OperatorLogic, UnaryInput};
use crate::operators::OpEnv;
use crate::plan::Partitioning;
use crate::record::Record;
use crate::time::Time;

/// Round-robin over the first `targets` workers: what Flink does between a
/// non-parallel source and a parallel operator.
pub fn rebalance<'s, R: Record>(
    stream: Stream<'s, Time, Vec<R>>,
    name: &str,
    targets: usize,
    env: Rc<OpEnv>,
) -> Stream<'s, Time, Vec<R>> {
    spread(stream, &Partitioning::Rebalance, name, targets, env)
}

/// Spreads `stream` over the first `targets` workers as `how` says. `name` (the
/// partition node's, or the stream's) names both operators and a user partitioner's
/// errors. Like an edge in Flink, it counts no records of its own.
pub fn spread<'s, R: Record>(
    stream: Stream<'s, Time, Vec<R>>,
    how: &Partitioning<R>,
    name: &str,
    targets: usize,
    env: Rc<OpEnv>,
) -> Stream<'s, Time, Vec<R>> {
    let targets = targets.clamp(1, env.worker.peers);
    let broadcast = matches!(how, Partitioning::Broadcast);
    let send_info = OpInfo::udf(&format!("{} {name}", how.name()), None);
    let (send_env, name_owned, how) = (env.clone(), name.to_string(), how.clone());
    let routed = driver::unary(stream, Pipeline, send_info, env.clone(), move |_cap| {
        let env = send_env;
        let here = env.worker.index;
        let rule = match how {
            Partitioning::Rebalance => Rule::RoundRobin { workers: (0..targets).collect(), next: here },
            Partitioning::Rescale => Rule::RoundRobin { workers: rescale_targets(env.locality, targets), next: here },
            Partitioning::Shuffle => Rule::Shuffle(seed(here)),
            Partitioning::Broadcast => Rule::Broadcast,
            // The dataflow reads a forwarded stream where it is; never sent here.
            Partitioning::Forward => Rule::RoundRobin { workers: vec![here], next: 0 },
            Partitioning::Custom(factory) => {
                Rule::Custom(env.instantiate(ErrorKind::Udf, &name_owned, None, &*factory)?, Vec::new())
            }
        };
        Some(Sender { rule, targets, name: name_owned, out: Vec::new() })
    });
    let receive_info = OpInfo::udf(&format!("receive {name}"), None);
    driver::unary(routed, Exchange::new(|r: &Routed<R>| r.0), receive_info, env, move |_cap| {
        Some(Receiver { broadcast, records: Vec::new() })
    })
}

/// The workers a rescale sends to from this process: the reader's workers that live
/// here, so records never leave the process; all of them if none does.
fn rescale_targets(locality: Locality, targets: usize) -> Vec<usize> {
    let local: Vec<usize> = (locality.first..locality.first + locality.count).filter(|&w| w < targets).collect();
    if local.is_empty() {
        (0..targets).collect()
    } else {
        local
    }
}

/// A shuffle's random state: different per worker and per run.
fn seed(worker: usize) -> u64 {
    let random = getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15);
    (random ^ (worker as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9)) | 1
}

/// SplitMix64: fast, and good enough to spread records evenly.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

enum Rule<R> {
    /// Each record to the next of `workers`, in turn.
    RoundRobin {
        workers: Vec<usize>,
        next: usize,
    },
    Shuffle(u64),
    Broadcast,
    /// The user's partitioner, and the destinations of the batch being sent.
    Custom(Box<dyn Partitioner<R>>, Vec<usize>),
}

struct Sender<R> {
    rule: Rule<R>,
    targets: usize,
    name: String,
    out: Vec<Routed<R>>,
}

impl<R: Record> OperatorLogic<Routed<R>> for Sender<R> {
    fn on_end(&mut self, _cx: &mut Cx<'_, Routed<R>>) -> Result<(), Failure> {
        if let Rule::Custom(f, _) = &mut self.rule {
            f.close().map_err(|e| Failure::of(ErrorKind::Udf, &self.name, e))?;
        }
        Ok(())
    }
}

impl<R: Record> UnaryInput<R, Routed<R>> for Sender<R> {
    fn on_batch(
        &mut self,
        cx: &mut Cx<'_, Routed<R>>,
        cap: &InputCapability<Time>,
        data: &mut Vec<R>,
    ) -> Result<(), Failure> {
        let env = cx.env;
        let (peers, targets) = (env.worker.peers, self.targets);
        let sent = match &mut self.rule {
            Rule::RoundRobin { workers, next } => partition(
                data,
                peers,
                env.locality,
                |_r| {
                    *next = (*next + 1) % workers.len();
                    workers[*next]
                },
                encode_records::<R>,
                &mut self.out,
            ),
            Rule::Shuffle(state) => partition(
                data,
                peers,
                env.locality,
                |_r| (next_random(state) % targets as u64) as usize,
                encode_records::<R>,
                &mut self.out,
            ),
            Rule::Broadcast => to_every_worker(data, targets, env.locality, &mut self.out),
            Rule::Custom(f, dests) => {
                dests.clear();
                for r in data.iter() {
                    let p = f.partition(r, targets).map_err(|e| Failure::of(ErrorKind::Udf, &self.name, e))?;
                    if !(0..targets as i64).contains(&p) {
                        let err = UdfError::new(format!(
                            "the partitioner returned {p}, but there are {targets} partitions (0 to {})",
                            targets - 1
                        ))
                        .with_record(r.describe());
                        return Err(Failure::of(ErrorKind::Udf, &self.name, err));
                    }
                    dests.push(p as usize);
                }
                let mut at = dests.iter();
                partition(
                    data,
                    peers,
                    env.locality,
                    |_r| *at.next().expect("a destination per record"),
                    encode_records::<R>,
                    &mut self.out,
                )
            }
        };
        data.clear();
        sent.map_err(UdfError::new)?;
        cx.give(cap, &mut self.out);
        Ok(())
    }
}

/// A copy of `data` (emptied) for each of the first `targets` workers; encoded once for
/// all the workers of other processes.
fn to_every_worker<R: Record>(
    data: &mut Vec<R>,
    targets: usize,
    locality: Locality,
    out: &mut Vec<Routed<R>>,
) -> Result<(), String> {
    if data.is_empty() {
        return Ok(());
    }
    // Encoded before the last local worker takes the records.
    let encoded = if (0..targets).any(|d| !locality.is_local(d)) {
        let mut bytes = Vec::new();
        encode_records(data, &mut bytes)?;
        bytes
    } else {
        Vec::new()
    };
    let last_local = (0..targets).rev().find(|&d| locality.is_local(d));
    for d in 0..targets {
        let batch = if !locality.is_local(d) {
            Batch::Remote(encoded.clone())
        } else if Some(d) == last_local {
            Batch::Local(std::mem::take(data))
        } else {
            Batch::Local(data.clone())
        };
        out.push((d as u64, batch));
    }
    data.clear();
    Ok(())
}

struct Receiver<R> {
    /// Local copies share their records: each worker makes its own (object reuse off).
    broadcast: bool,
    records: Vec<R>,
}

impl<R: Record> OperatorLogic<R> for Receiver<R> {}

impl<R: Record> UnaryInput<Routed<R>, R> for Receiver<R> {
    fn on_batch(
        &mut self,
        cx: &mut Cx<'_, R>,
        cap: &InputCapability<Time>,
        data: &mut Vec<Routed<R>>,
    ) -> Result<(), Failure> {
        for (_dest, batch) in data.drain(..) {
            if let Err(e) = unpack(batch, R::decode_batch, &mut self.records) {
                self.records.clear();
                return Err(UdfError::from(e).into());
            }
        }
        if self.broadcast {
            cx.env.own(&mut self.records)?;
        }
        cx.give(cap, &mut self.records);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_stays_in_the_process_when_it_can() {
        let two_of_four = |first| Locality { first, count: 2 };
        assert_eq!(rescale_targets(two_of_four(0), 4), vec![0, 1]);
        assert_eq!(rescale_targets(two_of_four(2), 4), vec![2, 3]);
        // A reader on fewer workers: what is left of them here, else all of them.
        assert_eq!(rescale_targets(two_of_four(0), 1), vec![0]);
        assert_eq!(rescale_targets(two_of_four(2), 1), vec![0]);
        assert_eq!(rescale_targets(two_of_four(2), 3), vec![2]);
    }

    #[test]
    fn broadcast_copies_each_batch_to_every_target_and_encodes_once() {
        let mut out = Vec::new();
        let mut data = vec!["a".to_string(), "b".to_string()];
        to_every_worker(&mut data, 3, Locality { first: 0, count: 2 }, &mut out).unwrap();
        assert!(data.is_empty());
        let dests: Vec<u64> = out.iter().map(|r| r.0).collect();
        assert_eq!(dests, vec![0, 1, 2]);
        for (d, batch) in &out {
            match batch {
                Batch::Local(v) => assert!(*d < 2 && v == &vec!["a".to_string(), "b".to_string()]),
                Batch::Remote(bytes) => {
                    assert_eq!(*d, 2);
                    let mut back = Vec::new();
                    String::decode_batch(bytes, &mut back).unwrap();
                    assert_eq!(back, vec!["a".to_string(), "b".to_string()]);
                }
            }
        }
    }

    #[test]
    fn shuffle_spreads_over_every_target() {
        let mut state = seed(0);
        let mut seen = [0usize; 4];
        for _ in 0..4000 {
            seen[(next_random(&mut state) % 4) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }
}
