//! Order statistics over latency samples.

use std::time::Duration;

/// Median, p99 and friends of a set of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Smallest sample.
    pub min: Duration,
    /// 50th percentile.
    pub median: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
    /// Arithmetic mean.
    pub mean: Duration,
}

/// The `q`-quantile (0..=1) of sorted `s` by nearest rank; zero if empty.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted.get(i).copied().unwrap_or(Duration::ZERO)
}

impl Summary {
    /// Summarises `samples` (any order).
    pub fn of(samples: &[Duration]) -> Summary {
        let mut s = samples.to_vec();
        s.sort_unstable();
        let total: Duration = s.iter().sum();
        let n = s.len();
        Summary {
            n,
            min: s.first().copied().unwrap_or(Duration::ZERO),
            median: quantile(&s, 0.5),
            p99: quantile(&s, 0.99),
            mean: if n == 0 {
                Duration::ZERO
            } else {
                total / u32::try_from(n).unwrap_or(u32::MAX)
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let s = Summary::of(&v);
        assert_eq!(s.median, Duration::from_micros(50));
        assert_eq!(s.p99, Duration::from_micros(99));
        assert_eq!(s.min, Duration::from_micros(1));
        assert_eq!(Summary::of(&[]).median, Duration::ZERO);
    }
}
