//! Notices other processes' commits by polling `PRAGMA data_version`, which
//! reads shared memory only: cheap enough to ask every few milliseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use tokio::sync::watch;

use crate::SqliteConfig;

pub(crate) struct Watch {
    rx: watch::Receiver<u64>,
    stop: Arc<AtomicBool>,
}

impl Watch {
    pub(crate) fn spawn(config: SqliteConfig) -> Watch {
        let (tx, rx) = watch::channel(0u64);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let spawned = thread::Builder::new()
            .name("errand-sqlite-watch".into())
            .spawn(move || {
                let Ok(conn) = crate::schema::connect(&config) else {
                    return;
                };
                let mut last: Option<i64> = None;
                while !stop2.load(Ordering::Relaxed) && !tx.is_closed() {
                    if let Ok(v) = conn.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0)) {
                        if last.is_some_and(|l| l != v) {
                            tx.send_modify(|n| *n += 1);
                        }
                        last = Some(v);
                    }
                    thread::sleep(config.watch_interval);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the SQLite change watcher; falling back to timeouts");
        }
        Watch { rx, stop }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        let mut rx = self.rx.clone();
        rx.mark_unchanged();
        rx
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
