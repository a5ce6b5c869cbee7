//! Wake-ups through LISTEN/NOTIFY, with a polling fallback.
//!
//! Statements that make jobs available (insert, promote, hand back, operator
//! retry, resume) `pg_notify` the schema's channel. One background task per
//! store holds a dedicated LISTEN connection and turns each notification
//! into a tick of a watch channel that [`Wakeups::wait`] waits on.
//!
//! When that connection drops, waiters are woken at once and, until it is
//! back, `wait` returns every `poll_interval` so callers poll. The task
//! reconnects with capped exponential backoff and wakes waiters again once
//! it listens, since notifications sent meanwhile were lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The state the listener task and the waiters share.
#[derive(Debug)]
pub(crate) struct Wakeups {
    tick: watch::Sender<u64>,
    listening: AtomicBool,
    poll_interval: Duration,
}

impl Wakeups {
    pub(crate) fn new(poll_interval: Duration) -> Arc<Self> {
        Arc::new(Wakeups {
            tick: watch::Sender::new(0),
            listening: AtomicBool::new(false),
            poll_interval,
        })
    }

    fn wake(&self) {
        self.tick.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn set_listening(&self, yes: bool) {
        if self.listening.swap(yes, Ordering::SeqCst) != yes {
            // Either way waiters should look again: on loss they must start
            // polling, on recovery they may have missed notifications.
            self.wake();
        }
    }

    /// Whether the LISTEN connection is up.
    pub(crate) fn listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    /// Waits for a notification, at most `timeout`; while not listening, at
    /// most the poll interval.
    pub(crate) async fn wait(&self, timeout: Duration) {
        let mut rx = self.tick.subscribe();
        let limit = if self.listening() {
            timeout
        } else {
            timeout.min(self.poll_interval)
        };
        let _ = tokio::time::timeout(limit, rx.changed()).await;
    }
}

/// Starts the listener task for `channel` on `pool` (a pool of its own, so
/// the LISTEN connection never takes one from the store's pool).
pub(crate) fn spawn(pool: PgPool, channel: String, wakeups: Arc<Wakeups>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        loop {
            match listen(&pool, &channel).await {
                Ok(mut listener) => {
                    backoff = Duration::from_millis(50);
                    wakeups.set_listening(true);
                    tracing::debug!(channel, "listening for job notifications");
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(_)) => wakeups.wake(),
                            Ok(None) => {
                                tracing::warn!(
                                    channel,
                                    "the LISTEN connection dropped; polling until it is back"
                                );
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(channel, error = %crate::error::one_line(&e.to_string()),
                                    "the LISTEN connection failed; polling until it is back");
                                break;
                            }
                        }
                    }
                    wakeups.set_listening(false);
                    // Dropping the listener returns its connection to its own
                    // pool, which tests it before handing it out again.
                }
                Err(e) => {
                    wakeups.set_listening(false);
                    tracing::debug!(channel, error = %crate::error::one_line(&e.to_string()),
                        retry_in_ms = backoff.as_millis() as u64, "cannot LISTEN yet");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    })
}

async fn listen(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Reconnection is ours to do (above), so a drop is reported at once.
    listener.eager_reconnect(false);
    listener.listen(channel).await?;
    Ok(listener)
}

/// Sends NOTIFYs for inserts made outside the application's transactions,
/// after their commit, from its own short transactions. Names that arrive
/// while one NOTIFY is in flight are sent together, once each.
pub(crate) struct Notifier {
    tx: tokio::sync::mpsc::UnboundedSender<Message>,
}

/// What the notifier task is sent.
enum Message {
    /// NOTIFY this queue.
    Queue(String),
    /// Answer once everything sent before has been notified.
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl Notifier {
    /// Starts the notifier task on `pool` for `channel`.
    pub(crate) fn spawn(pool: PgPool, channel: String) -> Notifier {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            let mut queues: Vec<String> = Vec::new();
            let mut flushed: Vec<tokio::sync::oneshot::Sender<()>> = Vec::new();
            while let Some(first) = rx.recv().await {
                let mut next = Some(first);
                while let Some(m) = next.take().or_else(|| rx.try_recv().ok()) {
                    match m {
                        Message::Queue(q) => queues.push(q),
                        Message::Flush(done) => flushed.push(done),
                    }
                }
                queues.sort_unstable();
                queues.dedup();
                if !queues.is_empty() {
                    let sent = sqlx::query("SELECT pg_notify($1, q) FROM unnest($2::text[]) AS q")
                        .bind(&channel)
                        .bind(&queues)
                        .execute(&pool)
                        .await;
                    if let Err(e) = sent {
                        // Wake-ups are hints: listeners also poll.
                        tracing::debug!(channel, error = %crate::error::one_line(&e.to_string()), "cannot notify");
                    }
                }
                queues.clear();
                for done in flushed.drain(..) {
                    let _ = done.send(());
                }
            }
        });
        Notifier { tx }
    }

    /// Asks for a NOTIFY of `queue` (sent soon, after the caller's commit).
    pub(crate) fn notify(&self, queue: &str) {
        let _ = self.tx.send(Message::Queue(queue.to_owned()));
    }

    /// Waits until every NOTIFY asked for before has been sent (or tried).
    pub(crate) async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}
