//! The scheduler: exactly one replica at a time (the holder of a PostgreSQL advisory lock on a
//! connection of its own) queues scheduled jobs, re-queues builds whose worker's lease lapsed
//! and ends builds past their timeout. When the holder dies its connection closes, the lock is
//! released, and another replica takes the role within a tick.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use sqlx::{Connection, PgConnection, PgPool};

use crate::events;
use crate::queue;

/// The advisory lock's key ("petrel" in ASCII).
const LEADER_LOCK: i64 = 0x7065_7472_656c;
/// How often the leader looks at leases, timeouts and schedules. Claims never wait for this:
/// they are woken by NOTIFY.
const TICK: Duration = Duration::from_secs(1);
/// How long past its timeout a build may run before the server ends it itself (the worker
/// normally reports the timeout first).
const TIMEOUT_GRACE: Duration = Duration::from_secs(30);

/// Whether this replica schedules now (shown by `GET /api/v1/system`).
#[derive(Debug, Clone, Default)]
pub struct Leadership(Arc<AtomicBool>);

impl Leadership {
    pub fn is_leader(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

pub fn spawn(db: PgPool, leadership: Leadership) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lock_conn: Option<PgConnection> = None;
        let mut last_tick = Utc::now();
        loop {
            if lock_conn.is_none() {
                lock_conn = try_lead(&db).await;
            }
            if let Some(conn) = lock_conn.as_mut() {
                // The lock lives as long as this connection: check that it still does.
                if conn.ping().await.is_err() {
                    tracing::warn!("lost the scheduler's lock connection; standing down");
                    lock_conn = None;
                }
            }
            leadership.0.store(lock_conn.is_some(), Ordering::Relaxed);
            if lock_conn.is_some() {
                let now = Utc::now();
                match pass(&db, last_tick).await {
                    Ok(p) if p != queue::Pass::default() => tracing::info!(?p, "scheduler pass"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("scheduler pass failed: {e}"),
                }
                last_tick = now;
            }
            tokio::time::sleep(TICK).await;
        }
    })
}

async fn try_lead(db: &PgPool) -> Option<PgConnection> {
    let mut conn = match db.acquire().await {
        Ok(c) => c.detach(),
        Err(e) => {
            tracing::debug!("scheduler: no connection: {e}");
            return None;
        }
    };
    match sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
        .bind(LEADER_LOCK)
        .fetch_one(&mut conn)
        .await
    {
        Ok(true) => {
            tracing::info!("this replica is now the scheduler");
            Some(conn)
        }
        Ok(false) => None,
        Err(e) => {
            tracing::debug!("scheduler: cannot ask for the lock: {e}");
            None
        }
    }
}

/// One pass of the leader's work, in one transaction.
pub async fn pass(db: &PgPool, last_tick: chrono::DateTime<Utc>) -> Result<queue::Pass, sqlx::Error> {
    let mut tx = db.begin().await?;
    let scheduled = queue::schedule_due(&mut tx).await?;
    let (requeued, failed) = queue::reap_lapsed_leases(&mut tx).await?;
    let timed_out = queue::reap_timeouts(&mut tx, TIMEOUT_GRACE).await?;
    if scheduled > 0 || requeued > 0 || queue::became_due(&mut tx, last_tick).await? {
        events::work_queued(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(queue::Pass { scheduled, requeued, failed, timed_out })
}
