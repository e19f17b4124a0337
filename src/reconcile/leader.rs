//! Leadership for the workers that must run on one replica at a time: a
//! session-level Postgres advisory lock held on a dedicated connection. If
//! the leader dies its connection closes, the lock is released, and another
//! replica takes it on its next try.

use sqlx::{PgConnection, PgPool};

/// A held advisory lock.
pub struct LeaderLock {
    /// Detached from the pool: dropping it closes the session, and with it
    /// the lock (a pooled session would keep holding the lock after a drop).
    conn: PgConnection,
    key: i64,
}

impl LeaderLock {
    /// The lock key for a store: distinct per Redis prefix, so stores sharing
    /// a database do not block each other.
    pub fn key_for(prefix: &str) -> i64 {
        i64::from(crc32fast::hash(format!("stockd:reconciler:{prefix}").as_bytes()))
    }

    /// Takes the lock if nobody holds it.
    pub async fn try_acquire(db: &PgPool, key: i64) -> Result<Option<LeaderLock>, sqlx::Error> {
        let mut conn = db.acquire().await?.detach();
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(&mut conn).await?;
        Ok(got.then_some(LeaderLock { conn, key }))
    }

    /// Whether the lock's session is still alive (and so the lock held).
    pub async fn still_held(&mut self) -> bool {
        sqlx::query("SELECT 1").execute(&mut self.conn).await.is_ok()
    }

    /// Gives the lock up.
    pub async fn release(mut self) {
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)").bind(self.key).execute(&mut self.conn).await;
    }
}
