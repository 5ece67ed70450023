//! Rolling aggregations over numbers: the arithmetic of the built-in `sum`, `min` and
//! `max`, and the per-key state that lets a rolling reduce keep a number instead of a
//! record.
//!
//! The rules are Python's, for the values where Rust can give Python's exact answer:
//! `int` (fitting in `i64`) and `float`. Where it cannot (an `i64` overflow, comparing
//! a huge int with a float), [`Rolling::step`] says so and the caller asks Python.

/// A number as an aggregation sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

/// Ints up to this magnitude convert to `f64` exactly, so comparing them with a float
/// as floats gives Python's (exact) answer.
const EXACT_F64: u64 = 1 << 53;

impl Number {
    /// `self + other` as Python computes it; None on `i64` overflow (Python's result
    /// is a big int). An int meets a float as a float, rounded to nearest as Python
    /// rounds `float(int)`.
    pub fn checked_add(self, other: Number) -> Option<Number> {
        use Number::*;
        Some(match (self, other) {
            (Int(a), Int(b)) => Int(a.checked_add(b)?),
            (Float(a), Float(b)) => Float(a + b),
            (Int(a), Float(b)) => Float(a as f64 + b),
            (Float(a), Int(b)) => Float(a + b as f64),
        })
    }

    /// How Python orders `self` and `other`: None when they are unordered (NaN) or
    /// when Rust cannot tell exactly (an int beyond 2^53 against a float).
    pub fn partial_cmp_py(self, other: Number) -> Result<Option<std::cmp::Ordering>, Inexact> {
        use Number::*;
        match (self, other) {
            (Int(a), Int(b)) => Ok(Some(a.cmp(&b))),
            (Float(a), Float(b)) => Ok(a.partial_cmp(&b)),
            (Int(a), Float(b)) if a.unsigned_abs() <= EXACT_F64 => Ok((a as f64).partial_cmp(&b)),
            (Float(a), Int(b)) if b.unsigned_abs() <= EXACT_F64 => Ok(a.partial_cmp(&(b as f64))),
            _ => Err(Inexact),
        }
    }

    /// Python's `self < other`.
    pub fn lt(self, other: Number) -> Result<bool, Inexact> {
        Ok(self.partial_cmp_py(other)? == Some(std::cmp::Ordering::Less))
    }

    /// Python's `self > other`.
    pub fn gt(self, other: Number) -> Result<bool, Inexact> {
        Ok(self.partial_cmp_py(other)? == Some(std::cmp::Ordering::Greater))
    }
}

/// Rust cannot give Python's exact answer here: ask Python.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inexact;

/// The rolling aggregations that update one field with a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rolling {
    Sum,
    Min,
    Max,
}

impl Rolling {
    /// The field's new value after `acc` meets `value` (Flink's rules: min/max keep
    /// `acc` while it holds the extreme, and take `value` otherwise, also on ties and
    /// on NaN); None when only Python can tell.
    pub fn step(self, acc: Number, value: Number) -> Option<Number> {
        match self {
            Rolling::Sum => acc.checked_add(value),
            Rolling::Min => Some(if acc.lt(value).ok()? { acc } else { value }),
            Rolling::Max => Some(if acc.gt(value).ok()? { acc } else { value }),
        }
    }
}

/// What a rolling reduce keeps for one key.
#[derive(Clone, Debug, PartialEq)]
pub enum RollingState<R> {
    /// The key's last result (any reduce).
    Record(R),
    /// A built-in aggregation's running number, kept instead of a record so that an
    /// update reads and writes no record in state (the records are scattered in
    /// memory; the number sits in the state table's entry) and a key costs no record.
    /// The reducer rebuilds the key's record from the key and the number when a
    /// record cannot take the fast path.
    Running { value: Number },
}

impl<R> RollingState<R> {
    /// The record worth fetching into cache ahead of an update, if the update reads one.
    pub fn record(&self) -> Option<&R> {
        match self {
            RollingState::Record(r) => Some(r),
            RollingState::Running { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Number::{Float, Int};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sums_follow_python() {
        assert_eq!(Int(2).checked_add(Int(3)), Some(Int(5)));
        assert_eq!(Int(i64::MAX).checked_add(Int(1)), None);
        assert_eq!(Int(1).checked_add(Float(0.5)), Some(Float(1.5)));
        assert_eq!(Float(0.5).checked_add(Int(1)), Some(Float(1.5)));
        // float(2**53 + 1) rounds to even, as Python does.
        assert_eq!(Int((1 << 53) + 1).checked_add(Float(0.0)), Some(Float(9007199254740992.0)));
    }

    #[test]
    fn min_and_max_keep_the_accumulator_only_while_it_holds_the_extreme() {
        assert_eq!(Rolling::Min.step(Int(1), Int(2)), Some(Int(1)));
        assert_eq!(Rolling::Min.step(Int(2), Float(2.0)), Some(Float(2.0)), "a tie takes the new value");
        assert_eq!(Rolling::Max.step(Float(1.0), Int(3)), Some(Int(3)));
        let nan = Rolling::Min.step(Int(1), Float(f64::NAN));
        assert!(matches!(nan, Some(Float(x)) if x.is_nan()), "NaN compares false: the new value");
        assert_eq!(Rolling::Max.step(Float(f64::NAN), Int(1)), Some(Int(1)));
        assert_eq!(Rolling::Min.step(Int(i64::MAX), Float(1.0)), None, "only Python compares exactly");
    }

    proptest! {
        /// Mixed comparisons agree with exact arithmetic wherever they answer.
        #[test]
        fn comparisons_are_exact(a in -(1i64 << 53)..(1i64 << 53), b in -1e17f64..1e17) {
            let exact = (a as i128).cmp(&(b.floor() as i128));
            let want_lt = if b.fract() != 0.0 { (a as f64) < b } else { exact == std::cmp::Ordering::Less };
            prop_assert_eq!(Int(a).lt(Float(b)), Ok(want_lt));
            prop_assert_eq!(Float(b).gt(Int(a)), Ok(want_lt));
        }

        #[test]
        fn int_sums_are_exact_or_declined(a in any::<i64>(), b in any::<i64>()) {
            match Rolling::Sum.step(Int(a), Int(b)) {
                Some(Int(s)) => prop_assert_eq!(s as i128, a as i128 + b as i128),
                None => prop_assert!(a.checked_add(b).is_none()),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
