//! A stream several operators read: timely hands each reader the same records (it
//! clones the batch, which for records like Python objects clones references). With
//! object reuse off, each reader reads through one of these operators, which makes
//! the records its own ([`OpEnv::own`]) before the reader can change them: whichever
//! runs first copies what the others still hold, the last one keeps the originals.

use std::rc::Rc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::InputCapability;
use timely::dataflow::Stream;

use crate::error::{ErrorKind, UdfResult};
use crate::exchange::{Batch, Routed};
use crate::operators::driver::{self, Cx, Failure, OpInfo, OperatorLogic, UnaryInput};
use crate::operators::{Keyed, OpEnv};
use crate::record::Record;
use crate::time::Time;

/// One reader's copy of a stream of records that `name` produces.
pub fn own_copy<'s, R: Record>(
    stream: Stream<'s, Time, Vec<R>>,
    name: &str,
    env: Rc<OpEnv>,
) -> Stream<'s, Time, Vec<R>> {
    own_batches(stream, name, env, |env, data| env.own(data))
}

/// One reader's copy of a keyed stream that `name` produces (key values and records;
/// batches bound for another process are bytes, decoded into new records there).
pub fn own_keyed_copy<'s, R: Record>(
    stream: Stream<'s, Time, Vec<Routed<Keyed<R>>>>,
    name: &str,
    env: Rc<OpEnv>,
) -> Stream<'s, Time, Vec<Routed<Keyed<R>>>> {
    own_batches(stream, name, env, |env, batches| {
        for (_dest, batch) in batches.iter_mut() {
            if let Batch::Local(items) = batch {
                for (_key, key_value, record) in items.iter_mut() {
                    env.own_one(key_value)?;
                    env.own_one(record)?;
                }
            }
        }
        Ok(())
    })
}

fn own_batches<'s, D: Clone + 'static, F: Fn(&OpEnv, &mut [D]) -> UdfResult<()> + 'static>(
    stream: Stream<'s, Time, Vec<D>>,
    name: &str,
    env: Rc<OpEnv>,
    own: F,
) -> Stream<'s, Time, Vec<D>> {
    let info = OpInfo::udf(&format!("copy of {name}"), None);
    let name = name.to_string();
    driver::unary(stream, Pipeline, info, env, move |_cap| Some(OwnCopy { name, own }))
}

/// Makes each batch its reader's own; a record that cannot be copied fails the job
/// in the name of the operator that produced it.
struct OwnCopy<F> {
    name: String,
    own: F,
}

impl<D: Clone + 'static, F> OperatorLogic<D> for OwnCopy<F> {}

impl<D: Clone + 'static, F: Fn(&OpEnv, &mut [D]) -> UdfResult<()>> UnaryInput<D, D> for OwnCopy<F> {
    fn on_batch(&mut self, cx: &mut Cx<'_, D>, cap: &InputCapability<Time>, data: &mut Vec<D>) -> Result<(), Failure> {
        (self.own)(cx.env, data).map_err(|e| Failure::of(ErrorKind::Udf, &self.name, e))?;
        cx.give(cap, data);
        Ok(())
    }
}
