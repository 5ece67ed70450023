//! A bounded source of consecutive integers, split across workers.

use std::ops::RangeInclusive;

/// The empty share (`1..=0`), returned whenever a worker has nothing to produce.
#[allow(clippy::reversed_empty_ranges)] // Empty on purpose, as the API asks.
fn empty() -> RangeInclusive<i64> {
    1..=0
}

/// The part of `start..=end` (both inclusive, as Flink's generate_sequence) that worker
/// `worker` of `workers` produces: contiguous, near-equal ranges in worker order; empty
/// when start > end.
///
/// The first `count % workers` workers get one element more than the rest. Arithmetic
/// is done in `i128` so `i64::MIN..=i64::MAX` does not overflow. An empty share is
/// `1..=0`; that is also what `workers == 0` or `worker >= workers` get, instead of a panic.
pub fn sequence_share(start: i64, end: i64, worker: usize, workers: usize) -> RangeInclusive<i64> {
    if start > end || worker >= workers {
        return empty();
    }
    let count = i128::from(end) - i128::from(start) + 1;
    let (w, n) = (worker as i128, workers as i128);
    let (base, extra) = (count / n, count % n);
    let len = base + i128::from(w < extra);
    if len == 0 {
        return empty();
    }
    let first = i128::from(start) + w * base + w.min(extra);
    let last = first + len - 1;
    match (i64::try_from(first), i64::try_from(last)) {
        (Ok(a), Ok(b)) => a..=b,
        // Unreachable: the share lies inside start..=end.
        _ => empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_cover(start: i64, end: i64, workers: usize) -> Result<(), TestCaseError> {
        let mut next = i128::from(start);
        let mut sizes = Vec::new();
        for w in 0..workers {
            let r = sequence_share(start, end, w, workers);
            if r.is_empty() {
                prop_assert_eq!(r.clone(), empty());
                sizes.push(0i128);
                continue;
            }
            // Contiguous with the previous share: disjoint and in order.
            prop_assert_eq!(i128::from(*r.start()), next);
            prop_assert!(r.start() <= r.end());
            sizes.push(i128::from(*r.end()) - i128::from(*r.start()) + 1);
            next = i128::from(*r.end()) + 1;
        }
        let expected_end = if start > end { i128::from(start) } else { i128::from(end) + 1 };
        prop_assert_eq!(next, expected_end);
        let (min, max) = (sizes.iter().min(), sizes.iter().max());
        prop_assert!(max.zip(min).is_none_or(|(a, b)| a - b <= 1));
        Ok(())
    }

    #[test]
    fn examples() {
        assert_eq!(sequence_share(0, 9, 0, 3), 0..=3);
        assert_eq!(sequence_share(0, 9, 1, 3), 4..=6);
        assert_eq!(sequence_share(0, 9, 2, 3), 7..=9);
        assert_eq!(sequence_share(5, 5, 0, 2), 5..=5);
        assert!(sequence_share(5, 5, 1, 2).is_empty());
        assert!(sequence_share(2, 1, 0, 1).is_empty());
        assert!(sequence_share(0, 9, 0, 0).is_empty());
        assert!(sequence_share(0, 9, 3, 3).is_empty());
    }

    #[test]
    fn full_i64_range_does_not_overflow() {
        for workers in 1..=7 {
            check_cover(i64::MIN, i64::MAX, workers).unwrap();
        }
        assert_eq!(sequence_share(i64::MIN, i64::MAX, 0, 1), i64::MIN..=i64::MAX);
        assert_eq!(sequence_share(i64::MIN, i64::MAX, 0, 2), i64::MIN..=-1);
        assert_eq!(sequence_share(i64::MIN, i64::MAX, 1, 2), 0..=i64::MAX);
        assert_eq!(sequence_share(i64::MAX, i64::MAX, 0, 3), i64::MAX..=i64::MAX);
    }

    proptest! {
        #[test]
        fn shares_cover_exactly(start in -50i64..50, len in -3i64..60, workers in 1usize..9) {
            check_cover(start, start + len - 1, workers)?;
        }

        #[test]
        fn shares_cover_exactly_any(start: i64, end: i64, workers in 1usize..64) {
            check_cover(start, end, workers)?;
        }
    }
}
