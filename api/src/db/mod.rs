//! The database: connecting, migrating, readiness, and the embedded cluster.

pub mod embedded;

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// Every migration in `migrations/`, embedded at build time. Each has an up and a down script.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL: {0}")]
    Url(sqlx::Error),
    #[error("cannot connect to the database: {0}")]
    Connect(sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub fn parse_url(url: &str) -> Result<PgConnectOptions, DbError> {
    url.parse().map_err(DbError::Url)
}

pub async fn connect(options: PgConnectOptions, max_connections: u32) -> Result<PgPool, DbError> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(DbError::Connect)
}

pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// The newest migration this build knows.
pub fn latest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// `(database reachable, migrations applied, newest applied version)`.
pub async fn readiness(pool: &PgPool) -> (bool, bool, Option<i64>) {
    let applied: Result<Option<i64>, sqlx::Error> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success").fetch_one(pool).await;
    match applied {
        Ok(version) => (true, version == Some(latest_migration()), version),
        Err(sqlx::Error::Database(_)) => (true, false, None),
        Err(_) => (false, false, None),
    }
}
