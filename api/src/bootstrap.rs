//! The first start of an empty database: an administrator and a `default` tenant it owns.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use sqlx::PgPool;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::auth::{password, secret};
use crate::config::Config;

/// Arbitrary constant: serialises bootstrap across API replicas sharing one database.
const BOOTSTRAP_LOCK: i64 = 0x7065_7472_656c_0001;

#[derive(Debug, Clone)]
pub struct FirstAdmin {
    pub username: String,
    /// Where the generated password was written; `None` when it came from the configuration.
    pub password_file: Option<PathBuf>,
}

pub async fn ensure_first_admin(db: &PgPool, config: &Config) -> Result<Option<FirstAdmin>, String> {
    let mut tx = db.begin().await.map_err(|e| e.to_string())?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(BOOTSTRAP_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    let any_user: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users)")
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    if any_user {
        return Ok(None);
    }
    let (password, password_file) = match &config.admin_password {
        Some(p) => (p.expose().to_string(), None),
        None => {
            let generated = secret::random_secret()[..24].to_string();
            let path = config.data_dir.join("initial-admin-password");
            write_private(&path, &generated).map_err(|e| format!("{}: {e}", path.display()))?;
            (generated, Some(path))
        }
    };
    let hash = password::hash(password).await?;
    let user_id = Uuid::new_v4();
    let tenant_id = Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, username, password_hash, is_admin) VALUES ($1, $2, $3, true)")
        .bind(user_id)
        .bind(&config.admin_username)
        .bind(hash)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, 'default')")
        .bind(tenant_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'owner')")
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    let system = Actor { user_id: None, username: Some("petrel".into()), token_id: None, ip: None };
    audit::record(
        &mut *tx,
        None,
        &system,
        "user.create",
        Some(user_id.to_string()),
        serde_json::json!({"username": config.admin_username, "is_admin": true, "bootstrap": true}),
    )
    .await
    .map_err(|e| e.to_string())?;
    audit::record(
        &mut *tx,
        Some(tenant_id),
        &system,
        "tenant.create",
        Some(tenant_id.to_string()),
        serde_json::json!({"name": "default", "owner": config.admin_username}),
    )
    .await
    .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(Some(FirstAdmin { username: config.admin_username.clone(), password_file }))
}

/// Makes sure a shared worker for this machine exists and its credential is in `path`: on the
/// first start (or when the file was removed) a new worker is registered and the file written.
pub async fn ensure_local_worker(db: &PgPool, path: &std::path::Path) -> Result<(), String> {
    if path.exists() {
        return Ok(());
    }
    let (credential, hash) = crate::auth::worker::new_credential();
    let id = Uuid::new_v4();
    // "local", or "local-<id>" when an earlier local worker (whose file is gone) has the name.
    sqlx::query(
        "INSERT INTO workers (id, name, credential_sha256)
         VALUES ($1, CASE WHEN EXISTS (SELECT 1 FROM workers WHERE name = 'local') THEN 'local-' || left($1::text, 8)
                          ELSE 'local' END, $2)",
    )
    .bind(id)
    .bind(&hash)
    .execute(db)
    .await
    .map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    write_private(path, &credential).map_err(|e| format!("{}: {e}", path.display()))
}

/// The bridge the local agent attaches unikernels to, and the default tenant may use.
pub const LOCAL_BRIDGE: &str = "petrel0";

/// A one-time enrollment token for the local agent, unless it is enrolled already (its state
/// directory holds a credential).
pub async fn local_agent_enrollment(
    db: &PgPool,
    state_dir: &std::path::Path,
) -> Result<Option<String>, String> {
    if state_dir.join("credential").exists() {
        return Ok(None);
    }
    let token = format!("{}{}", petrel_wire::deployments::ENROLLMENT_TOKEN_PREFIX, secret::random_secret());
    let taken: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM agents WHERE name = 'local')")
        .fetch_one(db)
        .await
        .map_err(|e| e.to_string())?;
    let name = if taken { format!("local-{}", &Uuid::new_v4().to_string()[..8]) } else { "local".into() };
    sqlx::query(
        "INSERT INTO agent_enrollments (token_sha256, name, expires_at) VALUES ($1, $2, now() + interval '1 hour')",
    )
    .bind(secret::storage_hash(&token))
    .bind(name)
    .execute(db)
    .await
    .map_err(|e| e.to_string())?;
    Ok(Some(token))
}

/// The example jobs, in the `default` tenant of a new installation.
pub async fn create_examples(db: &PgPool) -> Result<(), String> {
    let tenant: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM tenants WHERE name = 'default' AND parent_id IS NULL")
            .fetch_optional(db)
            .await
            .map_err(|e| e.to_string())?;
    let Some(tenant) = tenant else { return Ok(()) };
    // Room to deploy a few unikernels on this machine's local agent.
    let cpus: Vec<i32> = (0..std::thread::available_parallelism().map_or(1, |n| n.get()) as i32).collect();
    sqlx::query(
        "INSERT INTO quotas (tenant_id, unikernels, memory_mib, block_mib, cpus, bridges)
         VALUES ($1, 16, 4096, 0, $2, $3) ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(&cpus)
    .bind(vec![LOCAL_BRIDGE.to_string()])
    .execute(db)
    .await
    .map_err(|e| e.to_string())?;
    crate::examples::create_examples(db, tenant, &petrel_inputs::platform::detect())
        .await
        .map_err(|e| e.to_string())
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    writeln!(f, "{contents}")?;
    f.sync_all()
}
