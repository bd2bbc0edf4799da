//! Reconnection delays: exponential with jitter, as a value.
//!
//! Each failure doubles the ceiling (from `min` to at most `max`); the delay
//! is drawn uniformly from the upper half of the ceiling ("equal jitter"), so
//! a fleet that lost its reporter at the same instant does not come back in
//! lockstep, yet no delay is ever shorter than half the ceiling.

use std::time::Duration;

/// A `Backoff` that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid backoff: min {min:?} must be above zero and at most max {max:?}")]
pub struct InvalidBackoff {
    /// The minimum given.
    pub min: Duration,
    /// The maximum given.
    pub max: Duration,
}

/// Exponential backoff with jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    /// Delays between `min / 2` and `max`.
    pub fn new(min: Duration, max: Duration) -> Result<Self, InvalidBackoff> {
        if min.is_zero() || min > max {
            return Err(InvalidBackoff { min, max });
        }
        Ok(Backoff {
            min,
            max,
            ceiling: min,
        })
    }

    /// The delay before the next attempt; doubles the ceiling for the one after.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (self.ceiling * 2).min(self.max);
        ceiling / 2 + ceiling.mul_f64(0.5 * fastrand::f64())
    }

    /// After a success: the next failure waits about `min` again.
    pub fn reset(&mut self) {
        self.ceiling = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn invalid_bounds_are_refused() {
        assert!(Backoff::new(Duration::ZERO, Duration::from_secs(1)).is_err());
        assert!(Backoff::new(Duration::from_secs(2), Duration::from_secs(1)).is_err());
    }

    #[test]
    fn one_to_thirty_seconds_as_the_gatherer_uses_it() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30)).unwrap();
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(500) && delays[0] <= Duration::from_secs(1));
        assert!(delays[9] >= Duration::from_secs(15) && delays[9] <= Duration::from_secs(30));
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }

    proptest! {
        #[test]
        fn delays_stay_within_bounds(min_ms in 1u64..5_000, extra in 0u64..100_000, steps in 1usize..64) {
            let (min, max) = (Duration::from_millis(min_ms), Duration::from_millis(min_ms + extra));
            let mut b = Backoff::new(min, max).unwrap();
            for _ in 0..steps {
                let d = b.next_delay();
                prop_assert!(d >= min / 2 && d <= max, "{:?} outside {:?}..{:?}", d, min / 2, max);
            }
        }
    }
}
