//! Building and starting the HTTP(S) server.
//!
//! [`start`] binds, spawns the server and returns its handle and bound address, so tests start
//! it on port 0. [`run`] is the whole process: embedded database, migrations, the first
//! administrator, TLS, then [`start`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{ServerHandle, Service};
use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpServer, web};
use sqlx::PgPool;

use crate::config::{Config, Database, Tls};
use crate::db::embedded::{Durability, EmbeddedError, EmbeddedPostgres};
use crate::db::{self, DbError};
use crate::store::{BlobStore, StoreError};
use crate::tls::{self, LocalCa, TlsError};
use crate::{bootstrap, routes};

/// Shared by every request handler.
pub struct AppState {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub store: BlobStore,
    pub events: Arc<crate::events::Events>,
    pub leadership: crate::scheduler::Leadership,
    pub lookups: Arc<crate::lookup_cache::LookupCache>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot prepare the installation (first administrator, examples, local worker): {0}")]
    Bootstrap(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: std::path::PathBuf, source: std::io::Error },
}

/// A started server.
pub struct Server {
    pub addr: SocketAddr,
    pub url: String,
    pub handle: ServerHandle,
    pub local_ca: Option<LocalCa>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Background work, stopped with the server.
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Stops accepting, finishes in-flight requests, and waits for the server to end.
    pub async fn stop(self) {
        for task in &self.background {
            task.abort();
        }
        self.handle.stop(true).await;
        let _ = self.task.await;
    }

    /// Waits until the server ends (after a signal or `stop`).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.unwrap_or(Ok(()))
    }
}

/// Binds and starts the server on an already migrated database.
pub async fn start(config: Config, db: PgPool) -> Result<Server, StartError> {
    let identity = match &config.tls {
        Tls::PlainHttp => None,
        Tls::Files { cert, key } => Some(tls::from_files(cert, key)?),
        Tls::Generated { extra_names } => Some(tls::generated(&config.data_dir.join("tls"), extra_names)?),
    };
    let local_ca = identity.as_ref().and_then(|i| i.local_ca.clone());
    let https = identity.is_some();
    let config = Arc::new(config);
    let store = BlobStore::open(&config.artifact_store, &config.data_dir.join("staging"))?;
    let gc =
        crate::maintenance::spawn_periodic(db.clone(), store.clone(), std::time::Duration::from_secs(600));
    let tasks = crate::tasks::spawn_runner(db.clone(), store.clone());
    let events = Arc::new(crate::events::Events::default());
    let listener = events.spawn_listener(db.clone());
    let leadership = crate::scheduler::Leadership::default();
    let scheduler = crate::scheduler::spawn(db.clone(), leadership.clone());
    let lookups = Arc::new(crate::lookup_cache::LookupCache::default());
    let db_for_gauges = db.clone();
    let invalidator = crate::lookup_cache::LookupCache::spawn_invalidator(lookups.clone(), &events);
    let state = web::Data::new(AppState { db, config: config.clone(), store, events, leadership, lookups });
    let openapi_doc = web::Data::new(routes::openapi());

    let factory = move || {
        let mut security = DefaultHeaders::new()
            .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .add((header::REFERRER_POLICY, "no-referrer"))
            .add((header::X_FRAME_OPTIONS, "DENY"))
            // The SPA and the docs load only their own files; wasm needs 'wasm-unsafe-eval'.
            .add((
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
                 frame-ancestors 'none'; form-action 'self'",
            ));
        if https {
            security = security.add((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"));
        }
        routes::app(App::new(), state.clone(), openapi_doc.clone())
            .wrap(security)
            .wrap(actix_web::middleware::Compress::default())
            .wrap_fn(|req, srv| {
                let started = Instant::now();
                let method = req.method().clone();
                let path = req.path().to_string();
                let fut = srv.call(req);
                async move {
                    let res = fut.await?;
                    let status = res.status().as_u16();
                    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
                    // Successful reads are the hot path (look-ups, downloads): debug level there.
                    if method == actix_web::http::Method::GET && status < 400 {
                        tracing::debug!(%method, path, status, elapsed_ms, "request");
                    } else {
                        tracing::info!(%method, path, status, elapsed_ms, "request");
                    }
                    Ok(res)
                }
            })
            // Outermost: the request's span covers the log line above.
            .wrap(crate::otel::RequestTelemetry)
    };
    let addr = config.listen;
    // TCP_NODELAY: streamed answers (console events, chunked downloads) go out in small writes;
    // with Nagle's algorithm each waited on the client's delayed ACK (~40 ms).
    let server = HttpServer::new(factory).shutdown_timeout(10).disable_signals().tcp_nodelay(true);
    let server = match identity {
        Some(identity) => server.bind_rustls_0_23(addr, identity.config),
        None => server.bind(addr),
    }
    .map_err(|source| StartError::Bind { addr, source })?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    let mut background = vec![gc, tasks, listener, scheduler, invalidator];
    background.extend(crate::otel::spawn_sampler(db_for_gauges));
    Ok(Server { addr: bound, url: config.public_url(bound), handle, local_ca, task, background })
}

/// A running Petrel: the server and, without `DATABASE_URL`, its own PostgreSQL.
pub struct Running {
    pub server: Server,
    pub embedded: Option<EmbeddedPostgres>,
    pub first_admin: Option<bootstrap::FirstAdmin>,
    /// A token for `petrel-agent enroll` when the local agent is not enrolled yet.
    pub local_agent_enrollment: Option<String>,
}

impl Running {
    /// Stops the server, then the embedded cluster.
    pub async fn shutdown(self) {
        self.server.stop().await;
        if let Some(pg) = self.embedded
            && let Err(e) = tokio::task::spawn_blocking(move || pg.stop()).await.unwrap_or(Ok(()))
        {
            tracing::warn!("stopping the embedded PostgreSQL: {e}");
        }
    }
}

/// Everything `petrel-api` does before serving.
pub async fn run(config: Config) -> Result<Running, StartError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|source| StartError::DataDir { path: config.data_dir.clone(), source })?;
    let (options, embedded) = match &config.database {
        Database::External(url) => (db::parse_url(url.expose())?, None),
        Database::Embedded => {
            let pg = EmbeddedPostgres::start(&config.data_dir.join("postgres"), Durability::Durable).await?;
            (pg.connect_options(crate::db::embedded::DATABASE), Some(pg))
        }
    };
    let pool = db::connect(options, config.db_max_connections).await?;
    db::migrate(&pool).await?;
    let first_admin = bootstrap::ensure_first_admin(&pool, &config).await.map_err(StartError::Bootstrap)?;
    if first_admin.is_some() {
        bootstrap::create_examples(&pool).await.map_err(StartError::Bootstrap)?;
    }
    if config.local_worker {
        bootstrap::ensure_local_worker(&pool, &config.local_worker_credential())
            .await
            .map_err(StartError::Bootstrap)?;
    }
    let local_agent_enrollment = if config.local_agent {
        bootstrap::local_agent_enrollment(&pool, &config.local_agent_dir())
            .await
            .map_err(StartError::Bootstrap)?
    } else {
        None
    };
    let server = start(config, pool).await?;
    Ok(Running { server, embedded, first_admin, local_agent_enrollment })
}
