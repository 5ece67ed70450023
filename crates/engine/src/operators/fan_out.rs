//! A stream several operators read: timely hands each reader the same records (it
//! clones the batch, which for records like Python objects clones references). With
//! object reuse off, each reader reads through one of these operators, which makes
//! the records its own ([`OpEnv::own`]) before the reader can change them: whichever
//! runs first copies what the others still hold, the last one keeps the originals.

use std::rc::Rc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use crate::error::{ErrorKind, UdfResult};
use crate::exchange::{Batch, Routed};
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

fn own_batches<'s, D: Clone + 'static>(
    stream: Stream<'s, Time, Vec<D>>,
    name: &str,
    env: Rc<OpEnv>,
    own: impl Fn(&OpEnv, &mut [D]) -> UdfResult<()> + 'static,
) -> Stream<'s, Time, Vec<D>> {
    let name = name.to_string();
    stream.unary::<CapacityContainerBuilder<Vec<D>>, _, _, _>(
        Pipeline,
        &format!("copy of {name}"),
        move |_cap, _info| {
            move |input, output| {
                env.enter(|| {
                    input.for_each(|cap, data| {
                        if env.control.aborted() {
                            data.clear();
                            return;
                        }
                        if let Err(e) = own(&env, data) {
                            env.fail(ErrorKind::Udf, &name, e);
                            data.clear();
                            return;
                        }
                        output.session(&cap).give_container(data);
                    });
                });
            }
        },
    )
}
