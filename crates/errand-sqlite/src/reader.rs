//! A small pool of read connections, used from blocking tasks.

use std::sync::Mutex;

use rusqlite::Connection;

use errand_core::StoreError;

use crate::SqliteConfig;

const KEEP: usize = 4;

pub(crate) struct Readers {
    config: SqliteConfig,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(crate) fn new(config: SqliteConfig) -> Readers {
        Readers {
            config,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(c) => Ok(c),
            None => crate::schema::connect(&self.config).map_err(StoreError::from),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < KEEP {
            idle.push(conn);
        }
    }

    /// Runs `f` on a read connection (blocking; call from `spawn_blocking`).
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.take()?;
        let out = f(&conn);
        self.give_back(conn);
        out
    }
}
