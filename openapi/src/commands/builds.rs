//! `petrel build ...` and `petrel lookup`.

use std::path::PathBuf;

use chrono::Utc;
use clap::Subcommand;
use futures_util::StreamExt;
use serde_json::json;
use uuid::Uuid;

use super::{Ctx, Page, body, paged};
use crate::error::CliError;
use crate::generated::types;
use crate::output::Column;
use crate::transfer;

const BUILD: &[Column] = &[
    ("ID", "/id"),
    ("JOB", "/job_name"),
    ("PLATFORM", "/platform"),
    ("STATUS", "/status"),
    ("FINISHED", "/finished_at"),
    ("MAIN BINARY", "/main_binary/path"),
];
const BUILD_DETAIL: &[Column] = &[
    ("id", "/id"),
    ("job", "/job_name"),
    ("platform", "/platform"),
    ("status", "/status"),
    ("result", "/result"),
    ("queued", "/queued_at"),
    ("started", "/started_at"),
    ("finished", "/finished_at"),
    ("worker", "/worker"),
    ("attempt", "/attempt"),
    ("input id", "/input_id"),
    ("main binary", "/main_binary/path"),
    ("main sha256", "/main_binary/sha256"),
    ("rebuild of", "/rebuild_of"),
];
const ARTIFACT: &[Column] =
    &[("PATH", "/path"), ("SIZE", "/size"), ("SHA256", "/sha256"), ("AVAILABLE", "/available")];

#[derive(Subcommand)]
pub enum Build {
    /// Builds, newest first, with filters.
    List {
        #[arg(long)]
        job: Option<Uuid>,
        #[arg(long)]
        platform: Option<String>,
        /// queued, running, succeeded, failed, cancelled or timed_out.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    Show {
        id: Uuid,
    },
    /// A build's artifacts with sizes and hashes.
    Artifacts {
        id: Uuid,
    },
    /// A build's console; `--follow` streams new lines until the build ends.
    Log {
        id: Uuid,
        #[arg(long, short)]
        follow: bool,
    },
    /// Download an artifact, verifying its SHA-256.
    Download {
        id: Uuid,
        /// The artifact's path in the build (e.g. `bin/hello.hvt`); the main binary when absent.
        path: Option<String>,
        /// Where to write it (default: the artifact's file name, here).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Upload a build made elsewhere: each FILE (or FILE=PATH to name it in the build).
    Upload {
        #[arg(long)]
        job: Uuid,
        #[arg(long)]
        platform: String,
        /// The build's exit code (0: succeeded).
        #[arg(long, default_value_t = 0)]
        exit_code: i32,
        /// Its console, as a text file.
        #[arg(long)]
        console: Option<PathBuf>,
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// What differs between two builds' inputs and outputs.
    Compare {
        left: Uuid,
        right: Uuid,
    },
    /// Build it again on another worker and compare the outputs.
    Rebuild {
        id: Uuid,
    },
    Cancel {
        id: Uuid,
    },
    /// Which builds reproduced this one, and which did not.
    Reproducibility {
        id: Uuid,
    },
}

pub async fn run(ctx: &Ctx, command: Build) -> Result<(), CliError> {
    match command {
        Build::List { job, platform, status, page } => {
            let mut request = paged!(ctx.api.list_builds(), page);
            if let Some(job) = job {
                request = request.job_id(job);
            }
            if let Some(platform) = platform {
                request = request.platform(platform);
            }
            if let Some(status) = status {
                request = request.status(body::<types::BuildStatus>(json!(status))?);
            }
            ctx.out.list(&request.send().await?.into_inner(), BUILD);
        }
        Build::Show { id } => {
            ctx.out.object(&ctx.api.get_build().build_id(id).send().await?.into_inner(), BUILD_DETAIL)
        }
        Build::Artifacts { id } => {
            ctx.out.list(&ctx.api.list_artifacts().build_id(id).send().await?.into_inner(), ARTIFACT)
        }
        Build::Log { id, follow } => log(ctx, id, follow).await?,
        Build::Download { id, path, output } => download(ctx, id, path, output).await?,
        Build::Upload { job, platform, exit_code, console, files } => {
            upload(ctx, job, platform, exit_code, console, files).await?
        }
        Build::Compare { left, right } => {
            let comparison =
                ctx.api.compare_builds().left_id(left).right_id(right).send().await?.into_inner();
            if ctx.out.json {
                ctx.out.object(&comparison, &[]);
            } else {
                let summary = serde_json::to_value(&comparison.summary).expect("serializes");
                let rows: Vec<serde_json::Value> = summary
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, counts)| counts.is_object())
                    .map(|(what, counts)| json!({ "what": what, "counts": counts }))
                    .collect();
                print!(
                    "{}",
                    crate::output::table(
                        &rows,
                        &[
                            ("WHAT", "/what"),
                            ("REMOVED", "/counts/only_left"),
                            ("ADDED", "/counts/only_right"),
                            ("CHANGED", "/counts/changed"),
                        ],
                    )
                );
                println!("total differences: {}", crate::output::cell(summary.get("total")));
            }
        }
        Build::Rebuild { id } => {
            let queued = ctx.api.rebuild_build().build_id(id).send().await?.into_inner();
            ctx.out.done(&queued, &format!("Queued rebuild {}", queued.build_id));
        }
        Build::Cancel { id } => {
            ctx.api.cancel_build().build_id(id).send().await?;
            ctx.out.done(&json!({ "cancelled": id }), &format!("Cancelled build {id}"));
        }
        Build::Reproducibility { id } => {
            let verdict = ctx.api.build_reproducibility().build_id(id).send().await?.into_inner();
            ctx.out.object(
                &verdict,
                &[
                    ("build", "/build_id"),
                    ("input id", "/input_id"),
                    ("main binary", "/main_binary_sha256"),
                    ("reproduced by (same input)", "/same_input_same_output"),
                    ("same output, other input", "/other_input_same_output"),
                    ("NOT reproduced by", "/same_input_other_output"),
                ],
            );
        }
    }
    Ok(())
}

pub async fn lookup(ctx: &Ctx, sha256: &str) -> Result<(), CliError> {
    let found = ctx.api.lookup_hash().sha256(sha256).send().await?.into_inner();
    ctx.out.object(
        &found,
        &[
            ("sha256", "/sha256"),
            ("path", "/path"),
            ("available", "/available"),
            ("build", "/build/id"),
            ("job", "/build/job_name"),
            ("platform", "/build/platform"),
            ("finished", "/build/finished_at"),
        ],
    );
    Ok(())
}

pub async fn fleet(
    ctx: &Ctx,
    ecosystem: &str,
    name: &str,
    version: Option<String>,
    deployed: bool,
    page: Page,
) -> Result<(), CliError> {
    let mut request = paged!(ctx.api.search_fleet(), page).ecosystem(ecosystem).name(name).deployed(deployed);
    if let Some(version) = version {
        request = request.version(version);
    }
    let hits = request.send().await?.into_inner();
    ctx.out.list(
        &hits,
        &[
            ("BUILD", "/build_id"),
            ("JOB", "/job_name"),
            ("PLATFORM", "/platform"),
            ("VERSION", "/version"),
            ("FINISHED", "/finished_at"),
            ("RUNNING AS", "/deployments"),
        ],
    );
    Ok(())
}

/// Prints console lines as text (or one JSON object per line with `--json`).
pub fn print_line(ctx: &Ctx, line: &serde_json::Value) {
    if ctx.out.json {
        println!("{line}");
    } else {
        println!("{}", line.get("text").and_then(|t| t.as_str()).unwrap_or_default());
    }
}

async fn log(ctx: &Ctx, id: Uuid, follow: bool) -> Result<(), CliError> {
    // The event stream serves both: to the end of what exists, or on until the build ends.
    let response = ctx.api.stream_console().build_id(id).follow(follow).send().await?;
    follow_events(ctx, response.into_inner().into_inner()).await
}

/// Reads `line` events of a console stream until its `end` event.
pub async fn follow_events<S, E>(ctx: &Ctx, mut stream: S) -> Result<(), CliError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::error::Error,
{
    let mut buffer = Vec::new();
    let (mut event, mut data) = (String::new(), String::new());
    while let Some(chunk) = stream.next().await {
        buffer.extend_from_slice(&chunk.map_err(|e| CliError::Unreachable(crate::error::error_chain(&e)))?);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if let Some(value) = line.strip_prefix("event: ") {
                event = value.to_string();
            } else if let Some(value) = line.strip_prefix("data: ") {
                data.push_str(value);
            } else if line.is_empty() {
                match event.as_str() {
                    "line" => print_line(ctx, &serde_json::from_str(&data).unwrap_or_default()),
                    "end" => return Ok(()),
                    "error" => {
                        return Err(CliError::Unreachable(format!("the console stream failed: {data}")));
                    }
                    _ => {}
                }
                event.clear();
                data.clear();
            }
        }
    }
    Ok(())
}

async fn download(
    ctx: &Ctx,
    id: Uuid,
    path: Option<String>,
    output: Option<PathBuf>,
) -> Result<(), CliError> {
    let artifacts = ctx.api.list_artifacts().build_id(id).send().await?.into_inner();
    let path = match path {
        Some(path) => path,
        None => {
            let build = ctx.api.get_build().build_id(id).send().await?.into_inner();
            build
                .main_binary
                .map(|m| m.path)
                .ok_or_else(|| CliError::Usage("the build has no main binary: name an artifact".into()))?
        }
    };
    let artifact = artifacts
        .iter()
        .find(|a| a.path == path)
        .ok_or_else(|| CliError::Usage(format!("the build has no artifact {path:?}")))?;
    let target = output.unwrap_or_else(|| PathBuf::from(path.rsplit('/').next().unwrap_or(&path)));
    let response = ctx.api.download_artifact().build_id(id).path(&path).send().await?;
    let len = response.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse().ok());
    let (sha, size) =
        transfer::download(response.into_inner().into_inner(), len, &target, Some(&artifact.sha256)).await?;
    ctx.out.done(
        &json!({ "path": path, "file": target, "sha256": sha, "size": size }),
        &format!("{} ({size} bytes, SHA-256 {sha} verified)", target.display()),
    );
    Ok(())
}

async fn upload(
    ctx: &Ctx,
    job: Uuid,
    platform: String,
    exit_code: i32,
    console: Option<PathBuf>,
    files: Vec<String>,
) -> Result<(), CliError> {
    let files: Vec<(PathBuf, String)> = files
        .iter()
        .map(|spec| match spec.split_once('=') {
            Some((file, path)) => (PathBuf::from(file), path.to_string()),
            None => {
                let file = PathBuf::from(spec);
                let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                (file, name)
            }
        })
        .collect();
    let now = Utc::now();
    let request = body::<types::OpenUpload>(json!({
        "platform": platform, "started_at": now, "finished_at": now,
        "result": { "kind": "exited", "code": exit_code },
    }))?;
    let upload = ctx.api.open_upload().job_id(job).body(request).send().await?.into_inner();
    for (file, path) in &files {
        let (sha, size) = transfer::hash_file(file).await?;
        let stored = ctx
            .api
            .put_artifact()
            .upload_id(upload.id)
            .path(path)
            .x_petrel_sha256(&sha)
            .body(transfer::file_body(file, size).await?)
            .send()
            .await?
            .into_inner();
        if stored.sha256 != sha {
            return Err(CliError::Verify(format!(
                "the API stored {path} as {}, expected {sha}",
                stored.sha256
            )));
        }
    }
    if let Some(console) = console {
        let text = std::fs::read_to_string(&console)
            .map_err(|e| CliError::Usage(format!("--console {}: {e}", console.display())))?;
        let lines: Vec<serde_json::Value> =
            text.lines().enumerate().map(|(i, l)| json!({ "at_ms": i as i64, "text": l })).collect();
        let request = body::<types::ConsoleChunk>(json!({ "lines": lines }))?;
        ctx.api.append_console().upload_id(upload.id).body(request).send().await?;
    }
    let build = ctx.api.finalize_upload().upload_id(upload.id).send().await?.into_inner();
    ctx.out.done(&build, &format!("Uploaded build {} ({} artifacts)", build.id, files.len()));
    Ok(())
}
