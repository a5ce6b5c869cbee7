//! Raw SQLite insert rates on this machine, measured with plain rusqlite
//! and none of errand's machinery. `errand bench --baseline` runs these in
//! the same run as errand's own figures, so results can be quoted as ratios.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use errand_core::StoreError;

use crate::Durability;

/// Inserts rows into a fresh table in `dir`, `rows_per_txn` per
/// transaction, for about `secs`; returns rows per second.
pub fn insert_rate(
    dir: &Path,
    durability: Durability,
    rows_per_txn: usize,
    secs: f64,
) -> Result<f64, StoreError> {
    measure(dir, durability, rows_per_txn, secs).map_err(crate::error::err)
}

fn measure(dir: &Path, durability: Durability, rows_per_txn: usize, secs: f64) -> rusqlite::Result<f64> {
    let path = dir.join(format!("baseline-{rows_per_txn}.db"));
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
    let conn = Connection::open(&path)?;
    let sync = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync};
         CREATE TABLE q (id INTEGER PRIMARY KEY, state TEXT NOT NULL DEFAULT 'ready', payload TEXT NOT NULL, created_at REAL NOT NULL);"
    ))?;
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n: u64 = 0;
    let mut st = conn.prepare("INSERT INTO q (payload, created_at) VALUES (?1, ?2)")?;
    while start.elapsed() < budget {
        conn.execute_batch("BEGIN")?;
        for _ in 0..rows_per_txn.max(1) {
            st.execute(params![format!("{{\"n\": {n}}}"), n as f64])?;
            n += 1;
        }
        conn.execute_batch("COMMIT")?;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(st);
    drop(conn);
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
    Ok(rate)
}
