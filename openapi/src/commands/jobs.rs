//! `petrel job ...`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;
use uuid::Uuid;

use super::{Ctx, Page, body, key_value, paged, tenant_or_only};
use crate::error::CliError;
use crate::generated::types;
use crate::output::Column;

const JOB: &[Column] = &[
    ("ID", "/id"),
    ("NAME", "/qualified_name"),
    ("PLATFORMS", "/platforms"),
    ("SCHEDULE", "/schedule"),
    ("VISIBILITY", "/visibility"),
    ("NEXT RUN", "/next_run_at"),
];
const JOB_DETAIL: &[Column] = &[
    ("id", "/id"),
    ("name", "/qualified_name"),
    ("synopsis", "/synopsis"),
    ("platforms", "/platforms"),
    ("schedule", "/schedule"),
    ("next run", "/next_run_at"),
    ("visibility", "/visibility"),
    ("template", "/recipe/template/name"),
    ("timeout (s)", "/limits/timeout_secs"),
    ("attempts", "/limits/max_attempts"),
    ("created", "/created_at"),
];

#[derive(Subcommand)]
pub enum Job {
    /// Jobs you can read (`--tenant` for one tenant's).
    List {
        #[arg(long)]
        tenant: Option<Uuid>,
        #[command(flatten)]
        page: Page,
    },
    Show {
        id: Uuid,
    },
    /// A job built by workers from a template (`--template cargo --var ...`) or a script.
    Create {
        name: String,
        #[arg(long)]
        tenant: Option<Uuid>,
        /// Platforms to build on (repeat); the API's default when absent.
        #[arg(long = "platform")]
        platforms: Vec<String>,
        /// A recipe template (see the API's /api/v1/recipe-templates).
        #[arg(long, conflicts_with = "script")]
        template: Option<String>,
        /// A template variable, NAME=VALUE (repeat).
        #[arg(long = "var", value_parser = key_value, requires = "template")]
        vars: Vec<(String, String)>,
        /// A shell script file run in the build directory.
        #[arg(long)]
        script: Option<PathBuf>,
        /// hourly, daily, weekly or never.
        #[arg(long)]
        schedule: Option<String>,
        /// Readable without signing in.
        #[arg(long)]
        public: bool,
        #[arg(long)]
        synopsis: Option<String>,
    },
    /// Change when a job is built.
    Schedule {
        id: Uuid,
        schedule: String,
    },
    /// Queue a build now (on `--platform`s, else all of the job's).
    Run {
        id: Uuid,
        #[arg(long = "platform")]
        platforms: Vec<String>,
    },
    Delete {
        id: Uuid,
    },
}

pub async fn run(ctx: &Ctx, command: Job) -> Result<(), CliError> {
    match command {
        Job::List { tenant: None, page } => {
            ctx.out.list(&paged!(ctx.api.list_visible_jobs(), page).send().await?.into_inner(), JOB)
        }
        Job::List { tenant: Some(tenant), page } => {
            ctx.out.list(&paged!(ctx.api.list_jobs().tenant_id(tenant), page).send().await?.into_inner(), JOB)
        }
        Job::Show { id } => {
            ctx.out.object(&ctx.api.get_job().job_id(id).send().await?.into_inner(), JOB_DETAIL)
        }
        Job::Create { name, tenant, platforms, template, vars, script, schedule, public, synopsis } => {
            let tenant = tenant_or_only(ctx, tenant).await?;
            let recipe = match (template, script) {
                (Some(name), _) => Some(json!({
                    "template": { "name": name, "vars": vars.into_iter().collect::<BTreeMap<_, _>>() },
                })),
                (None, Some(path)) => {
                    let script = std::fs::read_to_string(&path)
                        .map_err(|e| CliError::Usage(format!("--script {}: {e}", path.display())))?;
                    Some(json!({ "script": script }))
                }
                (None, None) => None,
            };
            let mut request = json!({
                "name": name, "schedule": schedule, "synopsis": synopsis, "recipe": recipe,
                "visibility": if public { "public" } else { "private" },
            });
            if !platforms.is_empty() {
                request["platforms"] = json!(platforms);
            }
            let created = ctx
                .api
                .create_job()
                .tenant_id(tenant)
                .body(body::<types::CreateJob>(request)?)
                .send()
                .await?;
            let created = created.into_inner();
            ctx.out.done(&created, &format!("Created job {} ({})", created.qualified_name, created.id));
        }
        Job::Schedule { id, schedule } => {
            let request = body::<types::UpdateJob>(json!({ "schedule": schedule }))?;
            let job = ctx.api.update_job().job_id(id).body(request).send().await?.into_inner();
            let next = job.next_run_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into());
            ctx.out
                .done(&job, &format!("{} is built {}; next run: {next}", job.qualified_name, job.schedule));
        }
        Job::Run { id, platforms } => {
            let platforms = (!platforms.is_empty()).then_some(platforms);
            let request = body::<types::RunJob>(json!({ "platforms": platforms }))?;
            let queued = ctx.api.run_job().job_id(id).body(request).send().await?.into_inner();
            ctx.out.list(&queued, &[("PLATFORM", "/platform"), ("BUILD", "/build_id"), ("NEW", "/new")]);
        }
        Job::Delete { id } => {
            ctx.api.delete_job().job_id(id).send().await?;
            ctx.out.done(&json!({ "deleted": id }), &format!("Deleted job {id}"));
        }
    }
    Ok(())
}
