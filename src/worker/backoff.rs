//! The retry delay: base·2^(n-1) plus up to 10% jitter, capped.
//!
//! Jitter spreads out retries of jobs that failed together (say, when a mail server went down),
//! so they do not all come back in the same instant.

use rand::Rng;

/// Delay in ms before attempt `failed_attempt + 1`, with `jitter` in [0, 1) chosen by the caller.
pub fn delay_ms_with(failed_attempt: u32, base_ms: u64, max_ms: u64, jitter: f64) -> u64 {
    let exp = failed_attempt.saturating_sub(1).min(62);
    let raw = base_ms.saturating_mul(1u64 << exp);
    let with_jitter = raw.saturating_add((raw as f64 * 0.1 * jitter.clamp(0.0, 1.0)) as u64);
    with_jitter.min(max_ms)
}

/// Delay in ms before the next attempt after attempt `failed_attempt` failed.
pub fn delay_ms(failed_attempt: u32, base_ms: u64, max_ms: u64) -> u64 {
    delay_ms_with(failed_attempt, base_ms, max_ms, rand::rng().random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_base() {
        assert_eq!(delay_ms_with(1, 1000, 30_000, 0.0), 1000);
        assert_eq!(delay_ms_with(2, 1000, 30_000, 0.0), 2000);
        assert_eq!(delay_ms_with(3, 1000, 30_000, 0.0), 4000);
    }

    #[test]
    fn jitter_adds_at_most_ten_percent() {
        assert_eq!(delay_ms_with(1, 1000, 30_000, 0.999_999), 1099);
        for attempt in 1..=4 {
            for _ in 0..200 {
                let d = delay_ms(attempt, 1000, 30_000);
                let base = 1000u64 << (attempt - 1);
                assert!(
                    (base..=base + base / 10).contains(&d),
                    "attempt {attempt}: {d}"
                );
            }
        }
    }

    #[test]
    fn capped_and_never_overflows() {
        assert_eq!(delay_ms_with(6, 1000, 30_000, 0.0), 30_000);
        assert_eq!(delay_ms_with(5, 1000, 30_000, 0.99), 17_584);
        assert_eq!(delay_ms_with(u32::MAX, u64::MAX / 2, 30_000, 0.5), 30_000);
        assert_eq!(delay_ms_with(0, 1000, 30_000, 0.0), 1000);
    }
}
