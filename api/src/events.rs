//! Change notifications from PostgreSQL (`LISTEN`), fanned out inside this process: waiting
//! claims wake when a build is queued on any replica, and console streams wake when their
//! build gets lines or finishes. Nothing here polls.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// `NOTIFY` channel: something was queued or became due (payload unused).
pub const QUEUE_CHANNEL: &str = "petrel_queue";
/// `NOTIFY` channel: a build or deployment changed (console lines, status); payload is its id.
pub const BUILD_CHANNEL: &str = "petrel_build";
/// `NOTIFY` channel: an agent's assignments changed; payload is the agent's id.
pub const AGENT_CHANNEL: &str = "petrel_agent";

#[derive(Clone)]
pub struct Events {
    queue: watch::Sender<u64>,
    builds: broadcast::Sender<Uuid>,
    agents: broadcast::Sender<Uuid>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            queue: watch::channel(0).0,
            builds: broadcast::channel(1024).0,
            agents: broadcast::channel(256).0,
        }
    }
}

impl Events {
    /// Changes whenever the queue may hold new work.
    pub fn queue(&self) -> watch::Receiver<u64> {
        self.queue.subscribe()
    }

    /// Ids of builds that changed. A lagging receiver must re-read everything it follows.
    pub fn builds(&self) -> broadcast::Receiver<Uuid> {
        self.builds.subscribe()
    }

    /// Ids of agents whose assignments changed (nil: any, after a lag or reconnect).
    pub fn agents(&self) -> broadcast::Receiver<Uuid> {
        self.agents.subscribe()
    }

    /// Wakes every waiter, as after a lost connection when notifications may have been missed.
    fn wake_all(&self) {
        self.queue.send_modify(|n| *n += 1);
        let _ = self.builds.send(Uuid::nil());
        let _ = self.agents.send(Uuid::nil());
    }

    /// Listens until the process ends, reconnecting after failures.
    pub fn spawn_listener(self: &Arc<Self>, db: PgPool) -> tokio::task::JoinHandle<()> {
        let events = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match listen(&events, &db).await {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(e) => {
                        tracing::warn!("event listener: {e}; reconnecting");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
                events.wake_all();
            }
        })
    }
}

/// Forwards notifications until the connection is lost.
async fn listen(events: &Events, db: &PgPool) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(db).await?;
    listener.listen_all([QUEUE_CHANNEL, BUILD_CHANNEL, AGENT_CHANNEL]).await?;
    // Whatever happened while we were not listening.
    events.wake_all();
    while let Some(n) = listener.try_recv().await? {
        match n.channel() {
            QUEUE_CHANNEL => events.queue.send_modify(|n| *n += 1),
            channel => {
                if let Ok(id) = n.payload().parse::<Uuid>() {
                    let target = if channel == AGENT_CHANNEL { &events.agents } else { &events.builds };
                    let _ = target.send(id);
                }
            }
        }
    }
    Ok(())
}

/// Tells every replica that a build changed (in the caller's transaction: sent on commit).
pub async fn build_changed(conn: &mut sqlx::PgConnection, build_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(BUILD_CHANNEL)
        .bind(build_id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Tells every replica that jobs or tenants changed (visibility, deletion): caches of
/// public answers start over, followers re-read (sent on commit).
pub async fn jobs_changed(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    build_changed(conn, Uuid::nil()).await
}

/// Bumps the agent's assignment generation and wakes its long-poll on every replica (sent on
/// commit).
pub async fn agent_assignments_changed(
    conn: &mut sqlx::PgConnection,
    agent_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE agents SET generation = generation + 1 WHERE id = $1")
        .bind(agent_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(AGENT_CHANNEL)
        .bind(agent_id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Tells every replica's waiting claims that there is work (sent on commit).
pub async fn work_queued(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, '')").bind(QUEUE_CHANNEL).execute(conn).await?;
    Ok(())
}
