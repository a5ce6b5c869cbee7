//! In-process wake-ups: an insert or a promotion wakes the workers of its
//! queue at once, without polling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

/// One `Notify` per queue name, created on first use, and a signal for
/// cancel requests of running jobs.
pub(crate) struct Hub {
    queues: Mutex<HashMap<String, Arc<Notify>>>,
    cancels: watch::Sender<u64>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            queues: Mutex::default(),
            cancels: watch::Sender::new(0),
        }
    }
}

impl Hub {
    /// Tells this process's workers that an operator asked to cancel a running job.
    pub(crate) fn cancel_requested(&self) {
        self.cancels.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes when [`Hub::cancel_requested`] is called.
    pub(crate) fn cancels(&self) -> watch::Receiver<u64> {
        self.cancels.subscribe()
    }

    /// The notifier of `queue`.
    pub(crate) fn queue(&self, queue: &str) -> Arc<Notify> {
        let mut map = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get(queue) {
            return n.clone();
        }
        let n = Arc::new(Notify::new());
        map.insert(queue.to_owned(), n.clone());
        n
    }

    /// Wakes the workers of `queue`, if any are listening.
    pub(crate) fn wake(&self, queue: &str) {
        let n = self
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(queue)
            .cloned();
        if let Some(n) = n {
            n.notify_waiters();
            n.notify_one();
        }
    }
}
