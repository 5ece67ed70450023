//! Two connected streams and one function with a method per input (Flink's
//! `ConnectedStreams.map/flat_map/process`), on the driver's two-input flavour: the
//! driver feeds each input's batches, and its watermark is the least of both inputs'.
//!
//! Plain inputs are read where they are; keyed inputs (`connect(...).key_by(k1, k2)`)
//! arrive exchanged by key, both over the same workers, so a key's records of either
//! input meet on one worker. Keyed state and timers for the keyed form come with
//! `KeyedCoProcessFunction`: the keyed logic already has each record's key.

use std::rc::Rc;

use timely::dataflow::channels::pact::{ParallelizationContract, Pipeline};
use timely::dataflow::operators::InputCapability;
use timely::dataflow::Stream;

use crate::error::ErrorKind;
use crate::exchange::Routed;
use crate::functions::{CoContext, CoTransform, CoTransformFactory, Side};
use crate::operators::driver::{self, BinaryInput, Cx, Failure, OpInfo, OperatorLogic};
use crate::operators::keyed::{open, Keyed};
use crate::operators::OpEnv;
use crate::record::Record;
use crate::time::{Time, NO_TIME};

/// The connected operator over two plain streams.
pub fn co_transform<'s, R: Record>(
    first: Stream<'s, Time, Vec<R>>,
    second: Stream<'s, Time, Vec<R>>,
    node: usize,
    name: &str,
    factory: &CoTransformFactory<R>,
    parallelism: Option<usize>,
    env: Rc<OpEnv>,
) -> Stream<'s, Time, Vec<R>> {
    let info = OpInfo::udf(name, Some(node));
    let make = maker(name, factory, parallelism, env.clone());
    driver::binary(first, second, (Pipeline, Pipeline), info, env, move |_cap| make())
}

/// The connected operator over two keyed streams; `pacts` bring each key's batches of
/// both to its owner (see `with_key_pact!`).
#[allow(clippy::too_many_arguments)]
pub fn co_transform_keyed<'s, R, P1, P2>(
    first: Stream<'s, Time, Vec<Routed<Keyed<R>>>>,
    second: Stream<'s, Time, Vec<Routed<Keyed<R>>>>,
    pacts: (P1, P2),
    node: usize,
    name: &str,
    factory: &CoTransformFactory<R>,
    parallelism: Option<usize>,
    env: Rc<OpEnv>,
) -> Stream<'s, Time, Vec<R>>
where
    R: Record,
    P1: ParallelizationContract<Time, Vec<Routed<Keyed<R>>>>,
    P2: ParallelizationContract<Time, Vec<Routed<Keyed<R>>>>,
{
    let info = OpInfo::udf(name, Some(node));
    let make = maker(name, factory, parallelism, env.clone());
    driver::binary(first, second, pacts, info, env, move |_cap| make())
}

fn maker<R: Record>(
    name: &str,
    factory: &CoTransformFactory<R>,
    parallelism: Option<usize>,
    env: Rc<OpEnv>,
) -> impl FnOnce() -> Option<Connected<R>> {
    let (name, factory) = (name.to_string(), factory.clone());
    move || {
        let f = env.instantiate(ErrorKind::Udf, &name, parallelism, &*factory)?;
        Some(Connected { f, keyed: Vec::new(), out: Vec::new() })
    }
}

struct Connected<R> {
    f: Box<dyn CoTransform<R>>,
    /// A keyed batch, opened.
    keyed: Vec<Keyed<R>>,
    out: Vec<R>,
}

impl<R: Record> Connected<R> {
    /// Applies the function to `records` of input `side` and sends what it emits, each
    /// output with its input's timestamp.
    fn apply(
        &mut self,
        cx: &mut Cx<'_, R>,
        cap: &InputCapability<Time>,
        side: Side,
        records: impl Iterator<Item = R>,
    ) -> Result<(), Failure> {
        let env = cx.env;
        let ctx = CoContext { watermark: cx.watermark().unwrap_or(NO_TIME), processing_time: cx.processing_time() };
        for record in records {
            // A slow function must not delay a cancellation by a whole batch.
            if env.control.aborted() {
                self.out.clear();
                return Ok(());
            }
            let (ts, first) = (record.timestamp(), self.out.len());
            let applied =
                self.f.apply(side, record, &ctx, &mut self.out).and_then(|()| env.own(&mut self.out[first..]));
            if ts != NO_TIME {
                self.out[first..].iter_mut().for_each(|r| r.set_timestamp(ts));
            }
            if let Err(e) = applied {
                self.out.clear();
                return Err(e.into());
            }
        }
        cx.give(cap, &mut self.out);
        Ok(())
    }

    fn apply_keyed(
        &mut self,
        cx: &mut Cx<'_, R>,
        cap: &InputCapability<Time>,
        side: Side,
        data: &mut Vec<Routed<Keyed<R>>>,
    ) -> Result<(), Failure> {
        let mut keyed = std::mem::take(&mut self.keyed);
        let opened = open(data, &mut keyed);
        let result =
            opened.map_err(Failure::from).and_then(|()| self.apply(cx, cap, side, keyed.drain(..).map(|k| k.2)));
        keyed.clear();
        self.keyed = keyed;
        result
    }
}

impl<R: Record> OperatorLogic<R> for Connected<R> {
    fn on_end(&mut self, _cx: &mut Cx<'_, R>) -> Result<(), Failure> {
        Ok(self.f.close()?)
    }
}

impl<R: Record> BinaryInput<R, R, R> for Connected<R> {
    fn on_first(&mut self, cx: &mut Cx<'_, R>, cap: &InputCapability<Time>, data: &mut Vec<R>) -> Result<(), Failure> {
        self.apply(cx, cap, Side::First, data.drain(..))
    }

    fn on_second(&mut self, cx: &mut Cx<'_, R>, cap: &InputCapability<Time>, data: &mut Vec<R>) -> Result<(), Failure> {
        self.apply(cx, cap, Side::Second, data.drain(..))
    }
}

impl<R: Record> BinaryInput<Routed<Keyed<R>>, Routed<Keyed<R>>, R> for Connected<R> {
    fn on_first(
        &mut self,
        cx: &mut Cx<'_, R>,
        cap: &InputCapability<Time>,
        data: &mut Vec<Routed<Keyed<R>>>,
    ) -> Result<(), Failure> {
        self.apply_keyed(cx, cap, Side::First, data)
    }

    fn on_second(
        &mut self,
        cx: &mut Cx<'_, R>,
        cap: &InputCapability<Time>,
        data: &mut Vec<Routed<Keyed<R>>>,
    ) -> Result<(), Failure> {
        self.apply_keyed(cx, cap, Side::Second, data)
    }
}
