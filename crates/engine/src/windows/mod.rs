//! Window arithmetic shared by the windowing operators: which time windows a timestamp
//! falls in, per-key buffering for count windows, and what a window function is told
//! about the window it runs for. No timely and no state maps here,
//! so the rules can be tested exactly against Flink's semantics.
//!
//! Times are milliseconds. Arithmetic is done in `i128` and saturates to the `i64`
//! bounds only at the extremes, so no input panics.

pub mod assigners;
pub mod event_time;
pub mod triggers;

use std::collections::VecDeque;

/// A time window `[start, end)` in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct TimeWindow {
    pub start: i64,
    pub end: i64,
}

impl TimeWindow {
    /// The last timestamp inside the window (`end - 1`), when it may fire.
    pub fn max_timestamp(&self) -> i64 {
        self.end.saturating_sub(1)
    }

    /// Whether `ts` lies in `[start, end)`.
    pub fn contains(&self, ts: i64) -> bool {
        self.start <= ts && ts < self.end
    }
}

/// The window a window function is called for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowInfo {
    Time(TimeWindow),
    /// Flink's GlobalWindow (count windows, `GlobalWindows.create()`).
    Global,
}

/// What a window function is told about its firing (Flink's `ProcessWindowFunction.Context`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowContext {
    pub window: WindowInfo,
    /// The operator's event-time watermark (`i64::MIN` before the first one).
    pub watermark: i64,
    /// Processing time in ms (the wall clock, or the testing source's manual clock).
    pub processing_time: i64,
}

/// A window of the window core: a time window `[start, end)` or Flink's `GlobalWindow`.
/// Here rather than in `assigners`, so that assigners and triggers both name it without
/// depending on each other.
///
/// Ordered by `(start, end)`; the global window orders after every time window (one
/// core never holds both kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    Time(TimeWindow),
    Global,
}

impl Window {
    /// When the window is complete in its time domain: `end - 1`, or `i64::MAX` for the
    /// global window (Flink's `GlobalWindow.maxTimestamp() == Long.MAX_VALUE`).
    pub fn max_timestamp(&self) -> i64 {
        match self {
            Window::Time(w) => w.max_timestamp(),
            Window::Global => i64::MAX,
        }
    }

    /// `start` of a time window; `i64::MIN` for the global window.
    pub fn start(&self) -> i64 {
        match self {
            Window::Time(w) => w.start,
            Window::Global => i64::MIN,
        }
    }

    /// `end` of a time window; `i64::MAX` for the global window.
    pub fn end(&self) -> i64 {
        match self {
            Window::Time(w) => w.end,
            Window::Global => i64::MAX,
        }
    }

    pub fn time(&self) -> Option<TimeWindow> {
        match self {
            Window::Time(w) => Some(*w),
            Window::Global => None,
        }
    }

    /// The window as window functions see it.
    pub fn info(&self) -> WindowInfo {
        match self {
            Window::Time(w) => WindowInfo::Time(*w),
            Window::Global => WindowInfo::Global,
        }
    }
}

impl From<Window> for WindowInfo {
    fn from(w: Window) -> Self {
        w.info()
    }
}

fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// `ts - (ts - offset) mod size` with a non-negative modulo, in `i128`.
fn window_start_wide(ts: i64, offset: i64, size: i64) -> i128 {
    let ts = i128::from(ts);
    if size <= 0 {
        return ts;
    }
    ts - (ts - i128::from(offset)).rem_euclid(i128::from(size))
}

/// Flink's window start: ts - (ts - offset + size) mod size, with a non-negative modulo
/// (works for negative ts).
///
/// A non-positive `size` has no windows; it returns `ts` rather than panicking.
pub fn window_start(ts: i64, offset: i64, size: i64) -> i64 {
    saturate(window_start_wide(ts, offset, size))
}

/// The tumbling window of length `size` (shifted by `offset`) that contains `ts`.
pub fn tumbling_window(ts: i64, size: i64, offset: i64) -> TimeWindow {
    let start = window_start_wide(ts, offset, size);
    TimeWindow { start: saturate(start), end: saturate(start + i128::from(size.max(0))) }
}

/// Every sliding window containing ts, latest start first (Flink's order). size > 0, slide > 0.
///
/// The windows are appended to `out` (it is not cleared). Non-positive `size` or
/// `slide` appends nothing. At most `ceil(size / slide)` windows are appended.
pub fn sliding_windows(ts: i64, size: i64, slide: i64, offset: i64, out: &mut Vec<TimeWindow>) {
    if size <= 0 || slide <= 0 {
        return;
    }
    let mut start = window_start_wide(ts, offset, slide);
    let (size, slide) = (i128::from(size), i128::from(slide));
    let lowest_excluded = i128::from(ts) - size;
    while start > lowest_excluded {
        out.push(TimeWindow { start: saturate(start), end: saturate(start + size) });
        start -= slide;
    }
}

/// Per-key buffer for count windows, Flink's count_window(size[, slide]) on GlobalWindows:
/// tumbling (slide == size): fires every `size` elements with those elements, then starts empty;
/// sliding (slide < size): fires every `slide` elements with the last `size` elements (keeps at most `size`).
///
/// `slide > size` is allowed (as in Flink): it fires every `slide` elements with the last
/// `size` and behaves as sliding for [`CountWindowBuffer::flush`].
#[derive(Clone, Debug)]
pub struct CountWindowBuffer<V> {
    size: usize,
    slide: usize,
    /// The last at most `size` elements; older ones can never be emitted again.
    buf: VecDeque<V>,
    /// Elements pushed since the last firing.
    since_fire: usize,
}

impl<V: Clone> CountWindowBuffer<V> {
    /// A buffer for windows of `size` elements firing every `slide` elements
    /// (size >= 1, 1 <= slide; zero is treated as 1 instead of panicking).
    pub fn new(size: usize, slide: usize) -> Self {
        let size = size.max(1);
        Self { size, slide: slide.max(1), buf: VecDeque::with_capacity(size.min(1024)), since_fire: 0 }
    }

    fn is_tumbling(&self) -> bool {
        self.slide == self.size
    }

    /// Some(contents) when this element fires a window.
    pub fn push(&mut self, v: V) -> Option<Vec<V>> {
        if self.buf.len() == self.size {
            self.buf.pop_front();
        }
        self.buf.push_back(v);
        self.since_fire += 1;
        if self.since_fire < self.slide {
            return None;
        }
        self.since_fire = 0;
        if self.is_tumbling() {
            Some(self.buf.drain(..).collect())
        } else {
            Some(self.buf.iter().cloned().collect())
        }
    }

    /// End of a bounded input: the pending partial window (elements arrived since the last firing), if any, fires:
    /// tumbling -> the buffered elements; sliding -> the last `size` elements, only if at least one element arrived since the last firing.
    ///
    /// Leaves the buffer empty either way, since nothing follows the end of the input.
    pub fn flush(&mut self) -> Option<Vec<V>> {
        let pending = self.since_fire > 0;
        self.since_fire = 0;
        let contents: Vec<V> = self.buf.drain(..).collect();
        if pending {
            Some(contents)
        } else {
            None
        }
    }

    /// Whether no element is buffered (the per-key state can be dropped).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Assigners name triggers (`default_trigger`), so triggers must not name assigners:
    /// the two would depend on each other. What both need (`Window`) lives here.
    #[test]
    fn triggers_do_not_depend_on_assigners() {
        for (file, source) in [("triggers.rs", include_str!("triggers.rs")), ("mod.rs", include_str!("mod.rs"))] {
            let uses =
                source.lines().filter(|l| l.trim_start().starts_with("use ")).filter(|l| l.contains("assigners"));
            assert_eq!(uses.collect::<Vec<_>>(), Vec::<&str>::new(), "{file}");
        }
    }

    /// Brute force: the windows of length `size` starting at offset + k * slide that
    /// contain `ts`, latest start first.
    fn naive_windows(ts: i64, size: i64, slide: i64, offset: i64) -> Vec<TimeWindow> {
        let mut v = Vec::new();
        let mut start = ts + slide + 1;
        while start > ts - size - slide {
            if (start - offset) % slide == 0 {
                let w = TimeWindow { start, end: start + size };
                if w.contains(ts) {
                    v.push(w);
                }
            }
            start -= 1;
        }
        v
    }

    fn naive_start(ts: i64, offset: i64, size: i64) -> i64 {
        let mut s = ts;
        while (s - offset) % size != 0 {
            s -= 1;
        }
        s
    }

    #[test]
    fn window_examples() {
        assert_eq!(window_start(7, 0, 5), 5);
        assert_eq!(window_start(-1, 0, 5), -5);
        assert_eq!(window_start(-5, 0, 5), -5);
        assert_eq!(window_start(10, 2, 5), 7);
        assert_eq!(window_start(1, -2, 5), -2);
        let w = tumbling_window(1_500, 1_000, 0);
        assert_eq!(w, TimeWindow { start: 1_000, end: 2_000 });
        assert_eq!(w.max_timestamp(), 1_999);
        assert!(w.contains(1_000) && w.contains(1_999) && !w.contains(2_000));
        let mut out = Vec::new();
        sliding_windows(7, 10, 5, 0, &mut out);
        assert_eq!(out, vec![TimeWindow { start: 5, end: 15 }, TimeWindow { start: 0, end: 10 }]);
    }

    #[test]
    fn extremes_do_not_panic() {
        for &ts in &[i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
            for &size in &[i64::MIN, -1, 0, 1, 7, i64::MAX] {
                for &offset in &[i64::MIN, -3, 0, 3, i64::MAX] {
                    let _ = window_start(ts, offset, size);
                    let w = tumbling_window(ts, size, offset);
                    let _ = (w.max_timestamp(), w.contains(ts));
                    for &slide in &[i64::MIN, 0, 3, i64::MAX] {
                        let mut out = Vec::new();
                        if size == i64::MAX && slide == 3 {
                            continue; // valid but ~3e18 windows
                        }
                        sliding_windows(ts, size, slide, offset, &mut out);
                    }
                }
            }
        }
        assert_eq!(tumbling_window(i64::MAX, 10, 0).end, i64::MAX);
        let mut out = Vec::new();
        sliding_windows(i64::MAX, i64::MAX, i64::MAX, 0, &mut out);
        // The true window [MAX, 2 * MAX) is not representable: its end saturates.
        assert_eq!(out, vec![TimeWindow { start: i64::MAX, end: i64::MAX }]);
    }

    #[test]
    fn count_tumbling_example() {
        let mut b = CountWindowBuffer::new(3, 3);
        assert_eq!(b.push(1), None);
        assert_eq!(b.push(2), None);
        assert_eq!(b.push(3), Some(vec![1, 2, 3]));
        assert!(b.is_empty());
        assert_eq!(b.push(4), None);
        assert_eq!(b.flush(), Some(vec![4]));
        assert_eq!(b.flush(), None);
        assert!(b.is_empty());
    }

    #[test]
    fn count_sliding_example() {
        let mut b = CountWindowBuffer::new(3, 2);
        let fired: Vec<_> = (1..=7).filter_map(|v| b.push(v)).collect();
        assert_eq!(fired, vec![vec![1, 2], vec![2, 3, 4], vec![4, 5, 6]]);
        assert_eq!(b.flush(), Some(vec![5, 6, 7]));
        let mut b = CountWindowBuffer::new(2, 3);
        let fired: Vec<_> = (1..=7).filter_map(|v| b.push(v)).collect();
        assert_eq!(fired, vec![vec![2, 3], vec![5, 6]]);
        assert_eq!(b.flush(), Some(vec![6, 7]));
        let mut b = CountWindowBuffer::new(0, 0);
        assert_eq!(b.push('x'), Some(vec!['x']));
    }

    proptest! {
        #[test]
        fn window_start_matches_naive(ts in -10_000i64..10_000, offset in -300i64..300, size in 1i64..100) {
            let s = window_start(ts, offset, size);
            prop_assert_eq!(s, naive_start(ts, offset, size));
            let w = tumbling_window(ts, size, offset);
            prop_assert_eq!(w, TimeWindow { start: s, end: s + size });
            prop_assert!(w.contains(ts));
        }

        #[test]
        fn sliding_matches_naive(
            ts in -10_000i64..10_000,
            size in 1i64..60,
            slide in 1i64..60,
            offset in -100i64..100,
        ) {
            let mut out = vec![TimeWindow { start: 0, end: 0 }];
            sliding_windows(ts, size, slide, offset, &mut out);
            prop_assert_eq!(out[0], TimeWindow { start: 0, end: 0 });
            prop_assert_eq!(&out[1..], &naive_windows(ts, size, slide, offset)[..]);
        }

        #[test]
        fn count_windows_match_replay(
            size in 1usize..7,
            slide_pick in 0usize..9,
            n in 0usize..40,
        ) {
            // Half the cases tumbling, the rest sliding with any slide (also > size).
            let slide = if slide_pick < 3 { size } else { slide_pick - 2 };
            let items: Vec<usize> = (0..n).collect();
            let mut b = CountWindowBuffer::new(size, slide);
            let mut fired = Vec::new();
            for &x in &items {
                if let Some(w) = b.push(x) {
                    fired.push((x, w));
                }
            }
            // Replay: element i fires when (i + 1) is a multiple of slide, with the last
            // `size` elements up to i (tumbling: exactly the `size` since the last firing).
            let mut expected = Vec::new();
            for i in 0..n {
                if (i + 1) % slide == 0 {
                    let from = (i + 1).saturating_sub(size);
                    expected.push((i, items[from..=i].to_vec()));
                }
            }
            prop_assert_eq!(fired, expected);
            let rest = n % slide;
            let expected_flush = if rest == 0 {
                None
            } else if slide == size {
                Some(items[n - rest..].to_vec())
            } else {
                Some(items[n.saturating_sub(size)..].to_vec())
            };
            prop_assert_eq!(b.flush(), expected_flush);
            prop_assert!(b.is_empty());
        }
    }
}
