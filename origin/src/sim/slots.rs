//! Ollama's parallel slots and the queue in front of them: at most `slots` generations run at
//! once (OLLAMA_NUM_PARALLEL), later requests wait in arrival order, and once `queue_max` are
//! waiting (OLLAMA_MAX_QUEUE) new ones are refused. A router's least-loaded choice is only as
//! good as this behaviour is faithful, so waiting is FIFO and every slot is given back the
//! moment its holder is dropped, including when a client disconnects mid-generation.

use super::stats::Stats;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The queue already holds `queue_max` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

#[derive(Debug)]
pub struct Slots {
    // tokio's semaphore hands released permits to waiters in the order they started waiting,
    // and `try_acquire` never overtakes a waiter, which is exactly a FIFO queue.
    semaphore: Arc<Semaphore>,
    queue_max: usize,
    stats: Arc<Stats>,
}

/// How a generation ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Cancelled,
    Completed,
    Dropped,
}

/// A taken slot: one generation in progress. Dropping it frees the slot; unless
/// [`SlotPermit::complete`] or [`SlotPermit::dropped`] was called first, the generation counts
/// as cancelled by the client.
#[derive(Debug)]
pub struct SlotPermit {
    _permit: OwnedSemaphorePermit,
    stats: Arc<Stats>,
    outcome: Outcome,
}

/// A place in the queue; leaving it (slot granted or client gone) makes room for another.
struct QueueTicket<'a>(&'a Stats);

impl Drop for QueueTicket<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Slots {
    pub fn new(slots: usize, queue_max: usize, stats: Arc<Stats>) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(slots)),
            queue_max,
            stats,
        }
    }

    /// Takes a slot, waiting behind earlier requests if all are busy. Cancel-safe: dropping
    /// the future leaves the queue.
    ///
    /// # Errors
    /// [`QueueFull`] when all slots are busy and `queue_max` requests already wait; the
    /// rejection is counted.
    pub async fn acquire(&self) -> Result<SlotPermit, QueueFull> {
        if let Ok(permit) = self.semaphore.clone().try_acquire_owned() {
            return Ok(self.enter(permit));
        }
        let ticket = self.join_queue()?;
        let permit = self.semaphore.clone().acquire_owned().await;
        drop(ticket);
        // The semaphore is never closed, so acquisition only fails if that changes; refusing
        // the request is the safe answer then.
        permit.map(|p| self.enter(p)).map_err(|_| QueueFull)
    }

    fn join_queue(&self) -> Result<QueueTicket<'_>, QueueFull> {
        let limit = self.queue_max as u64;
        let joined = self
            .stats
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                (q < limit).then_some(q + 1)
            });
        match joined {
            Ok(_) => Ok(QueueTicket(&self.stats)),
            Err(_) => {
                Stats::bump(&self.stats.rejected);
                Err(QueueFull)
            }
        }
    }

    fn enter(&self, permit: OwnedSemaphorePermit) -> SlotPermit {
        Stats::bump(&self.stats.generations_started);
        let now = self.stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.stats
            .max_in_flight_seen
            .fetch_max(now, Ordering::Relaxed);
        SlotPermit {
            _permit: permit,
            stats: self.stats.clone(),
            outcome: Outcome::Cancelled,
        }
    }
}

impl SlotPermit {
    /// The done line went out.
    pub fn complete(&mut self) {
        self.outcome = Outcome::Completed;
    }

    /// The simulator cut the connection on purpose (--drop-after).
    pub fn dropped(&mut self) {
        self.outcome = Outcome::Dropped;
    }
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        let counter = match self.outcome {
            Outcome::Cancelled => &self.stats.cancelled,
            Outcome::Completed => &self.stats.generations_completed,
            Outcome::Dropped => &self.stats.dropped,
        };
        Stats::bump(counter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::mpsc;

    fn pool(slots: usize, queue_max: usize) -> (Arc<Slots>, Arc<Stats>) {
        let stats = Arc::new(Stats::default());
        (Arc::new(Slots::new(slots, queue_max, stats.clone())), stats)
    }

    async fn settle() {
        // Lets spawned tasks reach their await points; time is paused, so this is instant.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_get_slots_in_arrival_order() {
        let (slots, stats) = pool(1, 10);
        let first = slots.acquire().await;
        assert!(first.is_ok());
        let (tx, mut rx) = mpsc::unbounded_channel();
        for id in 0..5 {
            let (slots, tx) = (slots.clone(), tx.clone());
            tokio::spawn(async move {
                if let Ok(permit) = slots.acquire().await {
                    let _ = tx.send(id);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    drop(permit);
                }
            });
            settle().await;
        }
        assert_eq!(stats.snapshot().queued, 5);
        drop(first);
        let mut order = Vec::new();
        for _ in 0..5 {
            order.extend(rx.recv().await);
        }
        assert_eq!(order, [0, 1, 2, 3, 4]);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let s = stats.snapshot();
        assert_eq!((s.queued, s.in_flight, s.max_in_flight_seen), (0, 0, 1));
        assert_eq!(s.generations_started, 6);
    }

    #[tokio::test(start_paused = true)]
    async fn queue_is_bounded_and_rejections_are_counted() {
        let (slots, stats) = pool(2, 1);
        let a = slots.acquire().await;
        let b = slots.acquire().await;
        assert!(a.is_ok() && b.is_ok());
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire().await.map(|_| ()) }
        });
        settle().await;
        assert_eq!(slots.acquire().await.err(), Some(QueueFull));
        let s = stats.snapshot();
        assert_eq!((s.in_flight, s.queued, s.rejected), (2, 1, 1));
        drop(a);
        assert!(matches!(waiting.await, Ok(Ok(()))));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_queue_refuses_as_soon_as_slots_are_busy() {
        let (slots, stats) = pool(1, 0);
        let _held = slots.acquire().await;
        assert_eq!(slots.acquire().await.err(), Some(QueueFull));
        assert_eq!(stats.snapshot().rejected, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_gives_up_leaves_the_queue() {
        let (slots, stats) = pool(1, 1);
        let held = slots.acquire().await;
        let gave_up = tokio::time::timeout(Duration::from_millis(5), slots.acquire()).await;
        assert!(gave_up.is_err());
        assert_eq!(stats.snapshot().queued, 0);
        drop(held);
        // Its place is free again and the released slot went to nobody.
        assert!(slots.acquire().await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_are_counted_once() {
        let (slots, stats) = pool(3, 0);
        if let Ok(mut p) = slots.acquire().await {
            p.complete();
        }
        if let Ok(mut p) = slots.acquire().await {
            p.dropped();
        }
        drop(slots.acquire().await);
        let s = stats.snapshot();
        assert_eq!(s.generations_started, 3);
        assert_eq!(
            (s.generations_completed, s.dropped, s.cancelled, s.in_flight),
            (1, 1, 1, 0)
        );
    }
}
