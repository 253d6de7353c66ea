//! How many calls a long-lived server runs at once, and how many it lets wait: beyond both, a
//! call is refused at once with `busy` instead of queueing without bound. `adde serve` gives
//! every call (socket or MCP) through one gate, so one client flooding it cannot make the
//! server grow: the others get an answer, even if it is "busy".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};

/// The limits of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Calls that run at once.
    pub concurrent: usize,
    /// Calls that wait for one of those slots; more are refused.
    pub queued: usize,
}

pub struct Admission {
    limits: Limits,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// A call's slot, given back when dropped.
pub struct Admitted {
    _slot: OwnedSemaphorePermit,
}

impl Admission {
    pub fn new(limits: Limits) -> Admission {
        Admission {
            limits,
            slots: Arc::new(Semaphore::new(limits.concurrent.max(1))),
            waiting: AtomicUsize::new(0),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Waits for a slot, or refuses at once when the queue is full.
    pub async fn admit(&self) -> Result<Admitted> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Ok(Admitted { _slot: slot });
        }
        // Counted before waiting, so that two callers cannot both take the last place.
        let before = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _place = Waiting(&self.waiting);
        if before >= self.limits.queued {
            return Err(Error::Busy {
                concurrent: self.limits.concurrent,
                queued: self.limits.queued,
            });
        }
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("the server is shutting down".into()))?;
        Ok(Admitted { _slot: slot })
    }
}

/// A place in the queue, given back when the caller gets its slot, gives up or is refused.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn beyond_the_slots_and_the_queue_calls_are_refused_not_queued() {
        runtime().block_on(async {
            let gate = Arc::new(Admission::new(Limits {
                concurrent: 2,
                queued: 1,
            }));
            let a = gate.admit().await.unwrap();
            let _b = gate.admit().await.unwrap();
            assert_eq!(gate.slots.available_permits(), 0);
            // The third waits for a slot; the fourth finds the queue full.
            let waiter = tokio::spawn({
                let gate = gate.clone();
                async move { gate.admit().await }
            });
            tokio::task::yield_now().await;
            let refused = gate.admit().await.err().unwrap();
            assert_eq!(refused.code(), "busy");
            drop(a);
            let _c = waiter.await.unwrap().unwrap();
            // The queue is empty again: the next caller waits instead of being refused.
            let again = tokio::time::timeout(std::time::Duration::from_millis(50), gate.admit());
            assert!(again.await.is_err(), "it waited for a slot");
            assert_eq!(gate.waiting.load(Ordering::SeqCst), 0);
        });
    }

    #[test]
    fn no_queue_means_busy_as_soon_as_the_slots_are_taken() {
        runtime().block_on(async {
            let gate = Admission::new(Limits {
                concurrent: 1,
                queued: 0,
            });
            let _a = gate.admit().await.unwrap();
            assert_eq!(gate.admit().await.err().unwrap().code(), "busy");
        });
    }
}
