use crate::time::Time;
use std::rc::Rc;
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use crate::operators::OpEnv;
use crate::record::Record;

/// The head of a feedback loop: passes on its input and what comes back around.
///
/// The loop ends by itself when nothing circulates any more (timely's progress
/// tracking tells us). A record that never leaves would keep a bounded job alive
/// forever, so once the input has ended, records still coming back after `max_wait`
/// are dropped, counted, and reported as a warning.
pub fn iterate<'s, R: Record>(
    input: Stream<'s, Time, Vec<R>>,
    feedback: Stream<'s, Time, Vec<R>>,
    node: usize,
    name: &str,
    max_wait: Option<Duration>,
    env: Rc<OpEnv>,
) -> Stream<'s, Time, Vec<R>> {
    let name = name.to_string();
    input.binary_frontier::<_, CapacityContainerBuilder<Vec<R>>, _, _, _, _>(
        feedback,
        Pipeline,
        Pipeline,
        &name.clone(),
        move |_cap, _info| {
            let mut input_ended: Option<Instant> = None;
            let mut dropped = 0u64;
            move |(input, input_frontier), (feedback, _feedback_frontier), output| {
                if env.control.aborted() {
                    input.for_each(|_cap, data| data.clear());
                    env.enter(|| feedback.for_each(|_cap, data| data.clear()));
                    return;
                }
                input.for_each(|cap, data| {
                    env.count(node, data.len());
                    output.session(&cap).give_container(data);
                });
                if input_frontier.is_empty() && input_ended.is_none() {
                    input_ended = Some(Instant::now());
                }
                let give_up = match (input_ended, max_wait) {
                    (Some(t), Some(wait)) => t.elapsed() >= wait,
                    _ => false,
                };
                let mut just_dropped = 0u64;
                feedback.for_each(|cap, data| {
                    if give_up {
                        just_dropped += data.len() as u64;
                        env.enter(|| data.clear());
                    } else {
                        env.count(node, data.len());
                        output.session(&cap).give_container(data);
                    }
                });
                if just_dropped > 0 {
                    if dropped == 0 {
                        let wait_ms = max_wait.map(|w| w.as_millis()).unwrap_or(0);
                        env.control.warn(format!(
                            "{name}: records were still circulating {wait_ms} ms after the input ended; \
                             they were dropped so the job could finish (raise max_wait_time_ms, or check the loop's exit condition)"
                        ));
                    }
                    dropped += just_dropped;
                    env.control.add_dropped(just_dropped);
                }
            }
        },
    )
}
