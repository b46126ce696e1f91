//! Fault injection and what must hold after a fault: a network namespace whose link to the
//! host the test cuts silently, and [`assert_invariants`], the checks issue #10 lists (no build
//! stuck running, no partial artifact visible, no orphan blob after clean-up, quotas counting
//! exactly the live objects).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::Client;

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A fresh network namespace joined to the host by a veth pair on a /30 of its own: the host
/// end is [`Netns::host_ip`], the namespace's end [`Netns::ns_ip`]. Processes started through
/// [`Netns::command`] only reach the host over that link, which [`Netns::cut`] silences
/// (packets dropped both ways, nothing reset: peers notice only through their own timeouts)
/// and [`Netns::restore`] heals. Dropping it deletes the namespace and with it the pair.
/// Needs root (CAP_NET_ADMIN) and `ip` and `nft` (scripts/deps/apt.txt); fails loudly without.
pub struct Netns {
    pub name: String,
    pub host_ip: Ipv4Addr,
    pub ns_ip: Ipv4Addr,
    ns_dev: String,
}

/// Where the search for a free subnet starts, different for each namespace of a process.
static NEXT: AtomicU32 = AtomicU32::new(0);

impl Netns {
    pub fn new() -> Netns {
        // A /30 in 10.214.0.0/16 that no interface has yet; tests in other processes choose
        // under the same file lock, and add their address before releasing it.
        let lock = std::fs::File::create("/tmp/petrel-netns.lock").expect("netns lock file");
        // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
        assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) }, 0);
        let used = Command::new("ip").args(["-4", "-o", "addr", "show"]).output().expect("run ip");
        let used = String::from_utf8_lossy(&used.stdout);
        let mut slot = (std::process::id().wrapping_mul(37) + NEXT.fetch_add(1, Ordering::SeqCst)) % 16384;
        let (host_ip, ns_ip) = loop {
            let base = u32::from(Ipv4Addr::new(10, 214, 0, 0)) + slot * 4;
            let host_ip = Ipv4Addr::from(base + 1);
            if !used.contains(&format!(" {host_ip}/")) {
                break (host_ip, Ipv4Addr::from(base + 2));
            }
            slot = (slot + 1) % 16384;
        };
        let id = &Uuid::new_v4().simple().to_string()[..8];
        let name = format!("petrel-{id}");
        // Interface names have 15 bytes at most.
        let (host_dev, ns_dev) = (format!("pv{id}h"), format!("pv{id}n"));
        run(&["ip", "netns", "add", &name]);
        // From here on, Drop removes what was made.
        let netns = Netns { name, host_ip, ns_ip, ns_dev };
        let name = netns.name.as_str();
        run(&["ip", "link", "add", &host_dev, "type", "veth", "peer", "name", &netns.ns_dev, "netns", name]);
        run(&["ip", "addr", "add", &format!("{host_ip}/30"), "dev", &host_dev]);
        run(&["ip", "link", "set", &host_dev, "up"]);
        run(&["ip", "-n", name, "link", "set", "lo", "up"]);
        run(&["ip", "-n", name, "addr", "add", &format!("{ns_ip}/30"), "dev", &netns.ns_dev]);
        run(&["ip", "-n", name, "link", "set", &netns.ns_dev, "up"]);
        drop(lock);
        netns
    }

    /// `program` to be run inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Drops every packet on the namespace's end of the link, both ways, at the device (below
    /// TCP, which therefore sees no error, only silence).
    pub fn cut(&self) {
        let rules = format!(
            "table netdev petrel_cut {{
               chain ingress {{ type filter hook ingress device \"{dev}\" priority 0; policy drop; }}
               chain egress {{ type filter hook egress device \"{dev}\" priority 0; policy drop; }}
             }}",
            dev = self.ns_dev
        );
        let mut nft = self.command("nft");
        nft.args(["-f", "-"]).stdin(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = nft.spawn().expect("run nft (apt package nftables)");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), rules.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "nft: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn restore(&self) {
        run(&["ip", "netns", "exec", &self.name, "nft", "delete", "table", "netdev", "petrel_cut"]);
    }
}

impl Default for Netns {
    fn default() -> Netns {
        Netns::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and so the host's end.
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).output();
    }
}

/// Where an API with data directory `data_dir` keeps its blobs (the default local store).
pub fn blob_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("artifacts")
}

/// Runs the clean-up pass the API runs periodically (with no grace: what nothing references
/// now goes), then asserts what issue #10 asks to hold after any fault:
/// - no build is `running` without a live lease (the reaper runs every second; a lease that
///   lapsed longer ago than a few ticks is a stuck build);
/// - no partial artifact is visible: every artifact of a live build and of an open upload is a
///   stored blob whose file has its size and SHA-256;
/// - no orphan blob: the files in the store are exactly the blobs recorded as stored, and
///   every blob row is referenced by something;
/// - each quota's usage, as the API reports it, is the sum over the live deployments and the
///   block devices of the tenant's subtree.
pub async fn assert_invariants(db: &PgPool, admin: &Client, data_dir: &Path) {
    let stuck: Vec<(Uuid, Option<chrono::DateTime<chrono::Utc>>)> = sqlx::query_as(
        "SELECT id, lease_expires_at FROM builds
          WHERE status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < now() - interval '10 seconds')",
    )
    .fetch_all(db)
    .await
    .unwrap();
    assert!(stuck.is_empty(), "builds running without a live lease: {stuck:?}");
    let unfinished: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT DISTINCT b.id, b.status::text FROM build_artifacts a JOIN builds b ON b.id = a.build_id
          WHERE b.status IN ('queued', 'running')",
    )
    .fetch_all(db)
    .await
    .unwrap();
    assert!(unfinished.is_empty(), "artifacts visible on builds not finished: {unfinished:?}");

    let store_dir = blob_dir(data_dir);
    let store = petrel_api::store::BlobStore::open(&store_dir.to_string_lossy(), &data_dir.join("staging"))
        .expect("open the blob store");
    let report =
        petrel_api::maintenance::collect_garbage(db, &store, Duration::ZERO).await.expect("clean-up");
    assert!(report.ran, "the clean-up lock was held (another pass running?)");

    // Every artifact a reader can reach, with the blob row it names.
    let visible: Vec<VisibleArtifact> = sqlx::query_as(
        "SELECT 'build ' || a.build_id || ' ' || a.path, a.sha256, a.size, bl.size, bl.stored
           FROM build_artifacts a JOIN builds b ON b.id = a.build_id LEFT JOIN blobs bl ON bl.sha256 = a.sha256
          WHERE NOT b.expired
         UNION ALL
         SELECT 'upload ' || a.upload_id || ' ' || a.path, a.sha256, a.size, bl.size, bl.stored
           FROM upload_artifacts a JOIN uploads u ON u.id = a.upload_id LEFT JOIN blobs bl ON bl.sha256 = a.sha256
          WHERE u.state = 'open'",
    )
    .fetch_all(db)
    .await
    .unwrap();
    let mut checked = BTreeSet::new();
    for (what, sha, size, blob_size, stored) in &visible {
        assert_eq!(*stored, Some(true), "{what}: its blob is not stored");
        assert_eq!(*blob_size, Some(*size), "{what}: sizes differ between artifact and blob");
        if checked.insert(sha.clone()) {
            let path = blob_path(&store_dir, sha);
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{what}: {}: {e}", path.display()));
            assert_eq!(bytes.len() as i64, *size, "{what}: partial file {}", path.display());
            assert_eq!(Sha256::digest(&bytes)[..], sha[..], "{what}: {} has other content", path.display());
        }
    }

    let rows: Vec<(Vec<u8>, bool)> =
        sqlx::query_as("SELECT sha256, stored FROM blobs").fetch_all(db).await.unwrap();
    let stored: BTreeSet<String> = rows.iter().filter(|r| r.1).map(|r| hex::encode(&r.0)).collect();
    let files = files_in(&store_dir);
    let without_row: Vec<_> = files.difference(&stored).collect();
    let without_file: Vec<_> = stored.difference(&files).collect();
    assert!(without_row.is_empty(), "blob files without a stored row after clean-up: {without_row:?}");
    assert!(without_file.is_empty(), "blob rows marked stored without their file: {without_file:?}");
    let unreferenced: Vec<String> = sqlx::query_scalar(
        "SELECT encode(sha256, 'hex') FROM blobs bl
          WHERE NOT EXISTS (SELECT 1 FROM build_artifacts a WHERE a.sha256 = bl.sha256)
            AND NOT EXISTS (SELECT 1 FROM upload_artifacts u WHERE u.sha256 = bl.sha256)
            AND NOT EXISTS (SELECT 1 FROM block_devices d
                             WHERE d.content_sha256 = bl.sha256 OR d.export_sha256 = bl.sha256)",
    )
    .fetch_all(db)
    .await
    .unwrap();
    assert!(unreferenced.is_empty(), "blobs nothing references survived the clean-up: {unreferenced:?}");

    assert_quota_usage(db, admin).await;
}

/// What names the artifact, its SHA-256 and size, and its blob row's size and `stored`.
type VisibleArtifact = (String, Vec<u8>, i64, Option<i64>, Option<bool>);

fn blob_path(store_dir: &Path, sha: &[u8]) -> PathBuf {
    let hex = hex::encode(sha);
    store_dir.join(&hex[..2]).join(hex)
}

/// The blob files under the store (`xx/<sha256>`), by hex name; anything else there fails.
fn files_in(store_dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let Ok(fanout) = std::fs::read_dir(store_dir) else { return found };
    for dir in fanout.flatten() {
        for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            assert!(
                name.len() == 64 && name.starts_with(&*dir.file_name().to_string_lossy()),
                "a stray file in the blob store: {}",
                file.path().display()
            );
            found.insert(name);
        }
    }
    found
}

/// Each quota's usage as the API reports it equals the live objects of the subtree, counted
/// here from the rows (a deployment or block device counted twice, or a half-created one
/// counted at all, shows up as a difference).
async fn assert_quota_usage(db: &PgPool, admin: &Client) {
    let parents: BTreeMap<Uuid, Option<Uuid>> = sqlx::query_as("SELECT id, parent_id FROM tenants")
        .fetch_all(db)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let deployments: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT tenant_id, memory_mib::bigint FROM deployments WHERE state <> 'stopped'")
            .fetch_all(db)
            .await
            .unwrap();
    let blocks: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT tenant_id, size_mib::bigint FROM block_devices").fetch_all(db).await.unwrap();
    let within = |tenant: Uuid, root: Uuid| {
        let mut at = Some(tenant);
        while let Some(t) = at {
            if t == root {
                return true;
            }
            at = parents.get(&t).copied().flatten();
        }
        false
    };
    let quotas: Vec<Uuid> = sqlx::query_scalar("SELECT tenant_id FROM quotas").fetch_all(db).await.unwrap();
    for root in quotas {
        let live: Vec<i64> = deployments.iter().filter(|d| within(d.0, root)).map(|d| d.1).collect();
        let block: i64 = blocks.iter().filter(|b| within(b.0, root)).map(|b| b.1).sum();
        let usage = admin.get(&format!("/api/v1/tenants/{root}/quota")).await.expect(200).body;
        assert_eq!(usage["unikernels"], live.len(), "tenant {root}: {usage}");
        assert_eq!(usage["memory_mib"], live.iter().sum::<i64>(), "tenant {root}: {usage}");
        assert_eq!(usage["block_mib"], block, "tenant {root}: {usage}");
    }
}
