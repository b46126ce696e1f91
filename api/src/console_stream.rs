//! Live consoles as server-sent events, for builds and deployments alike: `line` events (data:
//! a ConsoleLine, id: its number, so a reconnecting client resumes with `Last-Event-ID`), an
//! `end` event once the source has finished, and keep-alive comments. Woken by PostgreSQL
//! notifications (the source's id), never by polling.

use std::time::Duration;

use actix_web::HttpResponse;
use bytes::Bytes;
use petrel_wire::builds::{BuildStatus, ConsoleLine};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::server::AppState;

const KEEPALIVE: Duration = Duration::from_secs(15);
const LINES_PER_READ: i64 = 1000;

#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// Ends when the build has finished.
    Build(Uuid),
    /// Ends when the deployment is destroyed. `at_ms` is Unix time in milliseconds.
    Deployment(Uuid),
}

impl Source {
    fn id(&self) -> Uuid {
        match self {
            Source::Build(id) | Source::Deployment(id) => *id,
        }
    }
}

/// The event-stream response following `source` from line `after` on.
pub fn respond(state: &AppState, source: Source, after: i64, follow: bool) -> HttpResponse {
    let follower =
        Follower { db: state.db.clone(), source, after, follow, changes: state.events.builds(), done: false };
    let stream = futures_util::stream::unfold(follower, |mut f| async move {
        if f.done {
            return None;
        }
        let chunk = f.next_chunk().await;
        Some((Ok::<Bytes, actix_web::Error>(chunk), f))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        // Proxies must not buffer a live stream.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream)
}

struct Follower {
    db: sqlx::PgPool,
    source: Source,
    after: i64,
    /// False: end once caught up.
    follow: bool,
    changes: tokio::sync::broadcast::Receiver<Uuid>,
    done: bool,
}

impl Follower {
    /// The next bytes of the stream: new lines, the end, or a keep-alive.
    async fn next_chunk(&mut self) -> Bytes {
        loop {
            match self.read().await {
                Ok(Some(chunk)) => return chunk,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(source = ?self.source, "console stream: {e}");
                    self.done = true;
                    return Bytes::from_static(b"event: error\ndata: \"the console could not be read\"\n\n");
                }
            }
            // Nothing new: wait for this source to change (or anything, after a lag).
            let id = self.source.id();
            let woke = tokio::time::timeout(KEEPALIVE, async {
                loop {
                    match self.changes.recv().await {
                        Ok(changed) if changed == id || changed.is_nil() => return true,
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => return true,
                        Err(RecvError::Closed) => return false,
                    }
                }
            })
            .await;
            match woke {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return Bytes::new();
                }
                Err(_) => return Bytes::from_static(b": keep-alive\n\n"),
            }
        }
    }

    /// New lines since the last read, or the end event once the source finished and every
    /// line was sent.
    async fn read(&mut self) -> Result<Option<Bytes>, sqlx::Error> {
        // The end first: lines written before it are then surely read below.
        let ended = self.ended().await?;
        let rows: Vec<(i64, i64, String)> = match self.source {
            Source::Build(id) => {
                sqlx::query_as(
                    "SELECT number, at_ms, text FROM build_console WHERE build_id = $1 AND number > $2
                      ORDER BY number LIMIT $3",
                )
                .bind(id)
                .bind(self.after)
                .bind(LINES_PER_READ)
                .fetch_all(&self.db)
                .await?
            }
            Source::Deployment(id) => {
                sqlx::query_as(
                    "SELECT number, (extract(epoch FROM at) * 1000)::bigint, text FROM deployment_console
                      WHERE deployment_id = $1 AND number > $2 ORDER BY number LIMIT $3",
                )
                .bind(id)
                .bind(self.after)
                .bind(LINES_PER_READ)
                .fetch_all(&self.db)
                .await?
            }
        };
        if !rows.is_empty() {
            let mut out = String::new();
            for (number, at_ms, text) in rows {
                let line = ConsoleLine { number, at_ms, text };
                out.push_str(&format!(
                    "id: {number}\nevent: line\ndata: {}\n\n",
                    serde_json::to_string(&line).unwrap_or_default()
                ));
                self.after = number;
            }
            return Ok(Some(Bytes::from(out)));
        }
        if let Some(end) = ended {
            self.done = true;
            return Ok(Some(Bytes::from(format!("event: end\ndata: {end}\n\n"))));
        }
        if !self.follow {
            self.done = true;
            return Ok(Some(Bytes::from_static(b"event: end\ndata: \"caught-up\"\n\n")));
        }
        Ok(None)
    }

    /// The end event's data (a JSON string) once the source has finished.
    async fn ended(&self) -> Result<Option<String>, sqlx::Error> {
        match self.source {
            Source::Build(id) => {
                let status: String = sqlx::query_scalar("SELECT status::text FROM builds WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.db)
                    .await?
                    .unwrap_or_else(|| "cancelled".into());
                let status = crate::handlers::builds::status_from_db(&status);
                Ok((!matches!(status, BuildStatus::Queued | BuildStatus::Running))
                    .then(|| serde_json::to_string(&status).unwrap_or_default()))
            }
            Source::Deployment(id) => {
                let exists: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM deployments WHERE id = $1)")
                        .bind(id)
                        .fetch_one(&self.db)
                        .await?;
                Ok((!exists).then(|| "\"destroyed\"".to_string()))
            }
        }
    }
}
