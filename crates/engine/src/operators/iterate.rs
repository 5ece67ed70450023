use crate::time::Time;
use std::rc::Rc;
use std::time::{Duration, Instant};

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::InputCapability;
use timely::dataflow::Stream;

use crate::operators::driver::{self, BinaryInput, Cx, Failure, OpInfo, OperatorLogic};
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
    let info = OpInfo::udf(name, Some(node));
    let name = name.to_string();
    driver::binary(input, feedback, (Pipeline, Pipeline), info, env, move |_cap| {
        Some(LoopHead { name, max_wait, input_ended: None, dropped: 0 })
    })
}

struct LoopHead {
    name: String,
    max_wait: Option<Duration>,
    /// When the loop's input was first seen ended.
    input_ended: Option<Instant>,
    /// Records dropped so far (the warning is given once).
    dropped: u64,
}

impl<R: Record> OperatorLogic<R> for LoopHead {}

impl<R: Record> BinaryInput<R, R, R> for LoopHead {
    fn on_first(&mut self, cx: &mut Cx<'_, R>, cap: &InputCapability<Time>, data: &mut Vec<R>) -> Result<(), Failure> {
        cx.give(cap, data);
        Ok(())
    }

    fn on_second(&mut self, cx: &mut Cx<'_, R>, cap: &InputCapability<Time>, data: &mut Vec<R>) -> Result<(), Failure> {
        if cx.frontier(0).is_empty() && self.input_ended.is_none() {
            self.input_ended = Some(Instant::now());
        }
        let give_up = match (self.input_ended, self.max_wait) {
            (Some(t), Some(wait)) => t.elapsed() >= wait,
            _ => false,
        };
        if !give_up {
            cx.give(cap, data);
            return Ok(());
        }
        let just_dropped = data.len() as u64;
        data.clear();
        if just_dropped > 0 {
            if self.dropped == 0 {
                let wait_ms = self.max_wait.map(|w| w.as_millis()).unwrap_or(0);
                cx.env.control.warn(format!(
                    "{}: records were still circulating {wait_ms} ms after the input ended; \
                     they were dropped so the job could finish (raise max_wait_time_ms, or check the loop's exit condition)",
                    self.name
                ));
            }
            self.dropped += just_dropped;
            cx.env.control.add_dropped(just_dropped);
        }
        Ok(())
    }
}
