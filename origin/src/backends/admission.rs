//! The admission queue: requests that found every slot busy wait here, oldest request first, up
//! to a bound. "Oldest" is when the request first asked for a slot: one retried after a backend
//! failed under it goes back to its place, not to the end of the line. Beyond the bound a request is refused at once (503) rather than waiting minutes: a
//! customer would rather be told to retry than watch a spinner.
//!
//! The queue only stores waiters and hands out grants; the pool decides, under its lock, which
//! backend a waiter gets. A grant that finds its waiter gone (the client left) is handed back.

use std::collections::VecDeque;
use std::time::Instant;
use tokio::sync::oneshot;

/// What a waiter receives: the index of the backend whose slot was reserved for it, or why it
/// will never get one.
pub type Grant = Result<usize, Refusal>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No healthy backend is left that this request has not already tried.
    NoBackend,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Full;

struct Waiter {
    id: u64,
    /// When the request first asked for a slot; the line is ordered by it.
    since: Instant,
    /// Backends this request already failed on; it is not sent back to them.
    exclude: Vec<usize>,
    tx: oneshot::Sender<Grant>,
}

pub struct Queue {
    waiters: VecDeque<Waiter>,
    max: usize,
    next_id: u64,
}

/// What the pool decides for the waiter at the head of the line.
pub enum Decision {
    Grant(usize),
    Wait,
    /// Wait, leaving a free slot to a request that has waited longer at another origin.
    Yield,
    Refuse(Refusal),
}

impl Queue {
    pub fn new(max: usize) -> Self {
        Queue {
            waiters: VecDeque::new(),
            max,
            next_id: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// When the request at the head of the line first asked for a slot.
    pub fn oldest(&self) -> Option<Instant> {
        self.waiters.front().map(|w| w.since)
    }

    /// Joins the line behind every request that asked before `since`.
    ///
    /// # Errors
    /// [`Full`] when `max` requests already wait.
    pub fn push(
        &mut self,
        exclude: Vec<usize>,
        since: Instant,
    ) -> Result<(u64, oneshot::Receiver<Grant>), Full> {
        if self.waiters.len() >= self.max {
            return Err(Full);
        }
        let (tx, rx) = oneshot::channel();
        self.next_id += 1;
        let at = self.waiters.partition_point(|w| w.since <= since);
        self.waiters.insert(
            at,
            Waiter {
                id: self.next_id,
                since,
                exclude,
                tx,
            },
        );
        Ok((self.next_id, rx))
    }

    /// Leaves the line (timeout or client gone). False if the waiter was already served.
    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.waiters.len();
        self.waiters.retain(|w| w.id != id);
        self.waiters.len() != before
    }

    /// Serves waiters in order while `decide` grants or refuses them. A waiter that cannot use
    /// any free slot (`Wait`) stays at its place but does not block those behind it, who may be
    /// allowed on a backend it has excluded. Returns the grants whose waiter had gone, for the
    /// caller to release.
    #[must_use]
    pub fn dispatch(
        &mut self,
        mut decide: impl FnMut(&[usize], Instant) -> Decision,
    ) -> Vec<usize> {
        let mut undone = Vec::new();
        let mut i = 0;
        while i < self.waiters.len() {
            match decide(&self.waiters[i].exclude, self.waiters[i].since) {
                Decision::Wait | Decision::Yield => i += 1,
                Decision::Grant(index) => {
                    if let Some(w) = self.waiters.remove(i) {
                        if w.tx.send(Ok(index)).is_err() {
                            undone.push(index);
                        }
                    }
                }
                Decision::Refuse(why) => {
                    if let Some(w) = self.waiters.remove(i) {
                        let _ = w.tx.send(Err(why));
                    }
                }
            }
        }
        undone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_fifo() {
        let mut q = Queue::new(2);
        let (_, mut first) = q.push(vec![], Instant::now()).unwrap();
        let (_, mut second) = q.push(vec![], Instant::now()).unwrap();
        assert_eq!(q.push(vec![], Instant::now()).unwrap_err(), Full);
        let mut free = 1;
        let undone = q.dispatch(|_, _| {
            if free > 0 {
                free -= 1;
                Decision::Grant(7)
            } else {
                Decision::Wait
            }
        });
        assert!(undone.is_empty());
        assert_eq!(first.try_recv().unwrap(), Ok(7));
        assert!(second.try_recv().is_err());
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn a_waiter_that_excludes_the_free_backend_does_not_block_the_line() {
        let mut q = Queue::new(4);
        let (_, mut picky) = q.push(vec![0], Instant::now()).unwrap();
        let (_, mut other) = q.push(vec![], Instant::now()).unwrap();
        let _ = q.dispatch(|ex, _| {
            if ex.contains(&0) {
                Decision::Wait
            } else {
                Decision::Grant(0)
            }
        });
        assert!(picky.try_recv().is_err());
        assert_eq!(other.try_recv().unwrap(), Ok(0));
    }

    #[test]
    fn grants_to_departed_waiters_are_undone() {
        let mut q = Queue::new(4);
        let (_, rx) = q.push(vec![], Instant::now()).unwrap();
        drop(rx);
        assert_eq!(q.dispatch(|_, _| Decision::Grant(3)), [3]);
        assert!(q.is_empty());
    }

    #[test]
    fn remove_and_refuse() {
        let mut q = Queue::new(4);
        let (id, _rx) = q.push(vec![], Instant::now()).unwrap();
        assert!(q.remove(id));
        assert!(!q.remove(id));
        let (_, mut rx) = q.push(vec![], Instant::now()).unwrap();
        let _ = q.dispatch(|_, _| Decision::Refuse(Refusal::NoBackend));
        assert_eq!(rx.try_recv().unwrap(), Err(Refusal::NoBackend));
    }

    #[test]
    fn a_retried_request_goes_back_to_its_place() {
        let mut q = Queue::new(4);
        let first_asked = Instant::now();
        let later = first_asked + std::time::Duration::from_millis(5);
        let (_, mut newer) = q.push(vec![], later).unwrap();
        let (_, mut retried) = q.push(vec![2], first_asked).unwrap();
        assert_eq!(q.oldest(), Some(first_asked));
        let mut free = 1;
        let _ = q.dispatch(|_, _| {
            if std::mem::take(&mut free) == 1 {
                Decision::Grant(1)
            } else {
                Decision::Wait
            }
        });
        assert_eq!(retried.try_recv().unwrap(), Ok(1));
        assert!(newer.try_recv().is_err(), "the newer request waits");
    }
}
