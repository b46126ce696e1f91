//! `login`, `logout`, `whoami`.

use clap::Args;

use super::{Ctx, Global};
use crate::config::{self, Stored};
use crate::connect;
use crate::error::CliError;
use crate::output::Output;

#[derive(Args)]
pub struct Login {
    /// Trust the CA whose SHA-256 fingerprint this is (`petrel-api` prints it at start); the
    /// CA is taken from the server's certificate chain and stored.
    #[arg(long, conflicts_with = "ca")]
    ca_fingerprint: Option<String>,
    /// Read the token from standard input instead of --token or PETREL_TOKEN.
    #[arg(long)]
    token_stdin: bool,
}

pub async fn login(login: Login, global: &Global, out: Output) -> Result<(), CliError> {
    let url = global.url.clone().ok_or_else(|| CliError::Usage("--url is required".into()))?;
    let token = if login.token_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| CliError::Usage(format!("reading the token: {e}")))?;
        line.trim().to_string()
    } else {
        global
            .token
            .clone()
            .ok_or_else(|| CliError::Usage("--token (or --token-stdin) is required".into()))?
    };
    let ca_pem = match (&login.ca_fingerprint, &global.ca) {
        (Some(fingerprint), _) => {
            let fingerprint =
                connect::parse_fingerprint(fingerprint).map_err(|e| CliError::Usage(e.to_string()))?;
            let url = url.clone();
            let pem = tokio::task::spawn_blocking(move || connect::fetch_pinned_ca(&url, &fingerprint))
                .await
                .map_err(|e| CliError::Other(e.into()))?;
            Some(pem.map_err(|e| CliError::Verify(e.to_string()))?)
        }
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| CliError::Usage(format!("--ca {}: {e}", path.display())))?,
        ),
        (None, None) => None,
    };
    let http = connect::http(ca_pem.as_deref(), Some(&token)).map_err(|e| CliError::Usage(e.to_string()))?;
    let me = connect::client(&url, http).me().send().await?.into_inner();
    let path =
        config::save(&Stored { url: url.clone(), token, ca_pem }).map_err(|e| CliError::Other(e.into()))?;
    out.done(&me, &format!("Signed in to {url} as {} (saved in {})", me.user.username, path.display()));
    Ok(())
}

pub fn logout(out: Output) -> Result<(), CliError> {
    let removed = config::remove().map_err(|e| CliError::Other(e.into()))?;
    out.done(
        &serde_json::json!({ "removed": removed }),
        if removed { "Signed out" } else { "Not signed in" },
    );
    Ok(())
}

pub async fn whoami(ctx: &Ctx) -> Result<(), CliError> {
    let me = ctx.api.me().send().await?.into_inner();
    ctx.out.object(
        &me,
        &[
            ("user", "/user/username"),
            ("admin", "/user/is_admin"),
            ("auth", "/auth"),
            ("expires", "/expires_at"),
        ],
    );
    if !ctx.out.json {
        println!();
        ctx.out.list(
            &me.memberships,
            &[("TENANT", "/tenant_name"), ("ROLE", "/role"), ("TENANT ID", "/tenant_id")],
        );
    }
    Ok(())
}
