//! Notices other processes' commits by polling `PRAGMA data_version`, which
//! reads shared memory only: cheap enough to ask every few milliseconds.
//!
//! The same thread checkpoints the WAL (passively: it never blocks writers)
//! once it grows past a few megabytes, so the writer thread, the one that
//! bounds throughput, does not spend its time copying pages back. Once a
//! checkpoint has copied every page back, it truncates the file
//! (`wal_checkpoint(TRUNCATE)`, waiting at most briefly for other
//! connections), so the WAL stays near [`CHECKPOINT_WAL_BYTES`] even after a
//! burst of writes and while the store is idle; writers also truncate it to
//! `journal_size_limit` when they restart it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use tokio::sync::watch;

use crate::SqliteConfig;

/// Look at the WAL's size every this many polls (about 50 ms).
const CHECKPOINT_EVERY_TICKS: u32 = 10;
/// Checkpoint once the WAL is larger than this.
const CHECKPOINT_WAL_BYTES: u64 = 4 * 1024 * 1024;

/// How long a truncating checkpoint waits for other connections: not at
/// all. Waiting, it would hold the checkpoint lock and keep the writer from
/// checkpointing by itself (see `WRITER_AUTOCHECKPOINT_PAGES`); it is tried
/// again on the next look instead.
const TRUNCATE_WAIT: std::time::Duration = std::time::Duration::ZERO;

/// Past this size the writer truncates the WAL itself: under a steady
/// stream of commits a checkpoint on this thread never catches up with the
/// end of the WAL, which then only grows. It matches the writer's own
/// autocheckpoint: truncating waits for readers, which the hot path must
/// not do often (at 8 MiB it cost `errand bench` a sixth of its enqueues).
const FORCE_TRUNCATE_WAL_BYTES: u64 = 16 * CHECKPOINT_WAL_BYTES;

/// Copies the WAL back into the database without blocking writers; when
/// that copied everything and the store is `idle` (no commit since the
/// last look), truncates the WAL file to zero bytes. Under load it is left
/// at its size: a truncated WAL regrows at once, and the file system's
/// allocations then slow every commit.
fn checkpoint(conn: &rusqlite::Connection, idle: bool) {
    // (busy, frames in the WAL, frames copied back)
    let passive = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    });
    match passive {
        Ok((0, log, copied)) if idle && log == copied => {
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                tracing::debug!(error = %e, "truncating WAL checkpoint failed; retried later");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "passive WAL checkpoint failed; retried later"),
    }
}

fn wal_path(db: &std::path::Path) -> std::path::PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    p.into()
}

pub(crate) struct Watch {
    rx: watch::Receiver<u64>,
    stop: Arc<AtomicBool>,
}

impl Watch {
    pub(crate) fn spawn(config: SqliteConfig, wal_too_big: Arc<AtomicBool>) -> Watch {
        let (tx, rx) = watch::channel(0u64);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let spawned = thread::Builder::new()
            .name("errand-sqlite-watch".into())
            .spawn(move || {
                let conn = match crate::schema::connect(&config) {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot start the SQLite change watcher; falling back to timeouts");
                        return;
                    }
                };
                // The watcher must keep polling: a checkpoint never waits
                // for another connection's lock.
                let _ = conn.busy_timeout(TRUNCATE_WAIT);
                let mut last: Option<i64> = None;
                let wal = wal_path(&config.path);
                let mut ticks: u32 = 0;
                // The data version at the last checkpoint look: unchanged
                // means no commit since, so the store is idle.
                let mut looked_at: Option<i64> = None;
                while !stop2.load(Ordering::Relaxed) && !tx.is_closed() {
                    ticks = ticks.wrapping_add(1);
                    if ticks.is_multiple_of(CHECKPOINT_EVERY_TICKS)
                        && let Ok(m) = std::fs::metadata(&wal)
                        && m.len() > CHECKPOINT_WAL_BYTES
                    {
                        if m.len() > FORCE_TRUNCATE_WAL_BYTES {
                            // Passive checkpoints are not keeping up: the
                            // writer truncates between its transactions.
                            wal_too_big.store(true, Ordering::Relaxed);
                        }
                        // (Also here: with no more writes the writer would
                        // never get to it.)
                        let idle = last.is_some() && looked_at == last;
                        checkpoint(&conn, idle);
                        looked_at = last;
                    }
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
