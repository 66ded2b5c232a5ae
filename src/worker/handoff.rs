//! A queue between the worker threads and the fetcher and committer (jobs one way, finished
//! jobs the other) that puts a waiting thread to sleep at once. crossbeam's channels spin and
//! call `sched_yield` a few times before they sleep: with a thread handing over every job on a
//! 2-core machine, those yields took 40% of jobq's CPU in a drain, CPU that Redis needs.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

struct Shared<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

struct State<T> {
    items: VecDeque<T>,
    senders: usize,
}

/// The sending end; the queue is closed once every sender is dropped.
pub(super) struct Tx<T>(Arc<Shared<T>>);

/// The receiving end.
pub(super) struct Rx<T>(Arc<Shared<T>>);

/// Why nothing was received.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Empty {
    /// Nothing came in time.
    Timeout,
    /// Nothing is left and every sender is gone.
    Closed,
}

pub(super) fn queue<T>() -> (Tx<T>, Rx<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            senders: 1,
        }),
        ready: Condvar::new(),
    });
    (Tx(shared.clone()), Rx(shared))
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Every change under the lock is one push or pop: a panic elsewhere leaves it whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T> Tx<T> {
    pub(super) fn send(&self, item: T) {
        self.0.lock().items.push_back(item);
        self.0.ready.notify_one();
    }

    /// Nothing is waiting to be received.
    pub(super) fn is_empty(&self) -> bool {
        self.0.lock().items.is_empty()
    }
}

impl<T> Clone for Tx<T> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Tx(self.0.clone())
    }
}

impl<T> Drop for Tx<T> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.senders -= 1;
        if st.senders == 0 {
            drop(st);
            self.0.ready.notify_all();
        }
    }
}

impl<T> Clone for Rx<T> {
    fn clone(&self) -> Self {
        Rx(self.0.clone())
    }
}

impl<T> Rx<T> {
    /// The next item, waiting at most `timeout` for one.
    pub(super) fn recv_timeout(&self, timeout: Duration) -> Result<T, Empty> {
        let deadline = Instant::now() + timeout;
        let mut st = self.0.lock();
        loop {
            if let Some(item) = st.items.pop_front() {
                return Ok(item);
            }
            if st.senders == 0 {
                return Err(Empty::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Empty::Timeout);
            }
            st = self
                .0
                .ready
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Up to `max` items waiting now, in order.
    pub(super) fn take(&self, max: usize, into: &mut Vec<T>) {
        let mut st = self.0.lock();
        let n = st.items.len().min(max);
        into.extend(st.items.drain(..n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_in_order_and_the_queue_closes_with_its_last_sender() {
        let (tx, rx) = queue();
        let tx2 = tx.clone();
        assert!(tx.is_empty());
        tx.send(1);
        tx2.send(2);
        assert!(!tx2.is_empty());
        tx.send(3);
        assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Ok(1));
        let mut got = Vec::new();
        rx.take(5, &mut got);
        assert_eq!(got, [2, 3]);
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(1)),
            Err(Empty::Timeout)
        );
        drop(tx);
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(1)),
            Err(Empty::Timeout)
        );
        tx2.send(4);
        drop(tx2);
        assert_eq!(rx.recv_timeout(Duration::from_secs(1)), Ok(4));
        assert_eq!(rx.recv_timeout(Duration::from_secs(1)), Err(Empty::Closed));
    }

    #[test]
    fn a_waiting_receiver_wakes_for_an_item_from_another_thread() {
        let (tx, rx) = queue();
        let t = std::thread::spawn(move || rx.recv_timeout(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        tx.send("job");
        assert_eq!(t.join().unwrap(), Ok("job"));
    }
}
