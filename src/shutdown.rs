//! The process-wide stop signal, and the one helper every periodic thread is built on.
//!
//! Every loop in jobq either checks [`Shutdown::is_triggered`] between bounded blocking calls or
//! sleeps in [`Shutdown::sleep`], which a trigger cuts short, so a stop is noticed at once.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A latch: once triggered it stays triggered. Cheap to clone.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl Shutdown {
    /// A latch not yet triggered.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Asks every thread to stop; returns false if a stop had already been asked for.
    pub fn trigger(&self) -> bool {
        let (lock, cv) = &*self.inner;
        let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
        let first = !*stopped;
        *stopped = true;
        cv.notify_all();
        first
    }

    /// Whether a stop has been asked for.
    pub fn is_triggered(&self) -> bool {
        *self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps for `d` or until triggered; returns true if triggered.
    pub fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let (lock, cv) = &*self.inner;
        let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
        while !*stopped {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            stopped = cv
                .wait_timeout(stopped, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Runs `tick` on a named thread until shutdown; `tick` returns how long to wait before the next
/// run. Used by the scheduler, the heartbeat and the reaper, so their loops cannot drift apart.
pub fn spawn_periodic(
    name: &str,
    shutdown: &Shutdown,
    mut tick: impl FnMut() -> Duration + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    let shutdown = shutdown.clone();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            while !shutdown.is_triggered() {
                let wait = tick();
                if shutdown.sleep(wait) {
                    break;
                }
            }
        })
}

/// Capped exponential backoff for reconnect loops: 100 ms, 200 ms, … up to 5 s.
#[derive(Debug, Clone, Copy)]
pub struct RetryDelay {
    next: Duration,
}

impl Default for RetryDelay {
    fn default() -> Self {
        RetryDelay {
            next: Duration::from_millis(100),
        }
    }
}

impl RetryDelay {
    pub const MAX: Duration = Duration::from_secs(5);

    /// The delay to wait now; the next one doubles, up to [`RetryDelay::MAX`].
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        d
    }

    pub fn reset(&mut self) {
        *self = RetryDelay::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_wakes_a_sleeper() {
        let s = Shutdown::new();
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.sleep(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        assert!(s.trigger());
        assert!(t.join().unwrap());
        assert!(!s.trigger());
        assert!(s.is_triggered());
    }

    #[test]
    fn retry_delay_doubles_up_to_the_cap() {
        let mut r = RetryDelay::default();
        let seq: Vec<u128> = (0..8).map(|_| r.next_delay().as_millis()).collect();
        assert_eq!(seq, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}
