//! The artifact store on an S3-compatible service: moto's standalone server on loopback (installed
//! by `scripts/setup.sh` into `$PETREL_TOOLS`), a bucket of its own, and the API configured with
//! `artifact_store = "s3://bucket/prefix"` and the standard `AWS_*` variables. Uploads (one small
//! artifact, one large enough for a multipart upload), downloads, and clean-up of an aborted
//! upload's object are checked against the bucket itself.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use petrel_api::store::BlobStore;
use petrel_tests::{Api, TestServer};
use reqwest::Method;
use sha2::{Digest, Sha256};

const BUCKET: &str = "petrel-artifacts";
const PREFIX: &str = "store/v1";

/// moto's S3 server on a free loopback port; killed when dropped.
struct Moto {
    child: Child,
    endpoint: String,
    _log_dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$PETREL_TOOLS/bin/moto_server` (where `scripts/setup.sh` links it), else one on `PATH`.
fn moto_binary() -> PathBuf {
    let tools = std::env::var_os("PETREL_TOOLS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/petrel-tools")
    });
    let candidates = std::iter::once(tools.join("bin/moto_server")).chain(
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join("moto_server")).collect::<Vec<_>>())
            .unwrap_or_default(),
    );
    for c in candidates {
        if c.is_file() {
            return c;
        }
    }
    panic!(
        "moto_server (PyPI's moto[server], the S3-compatible service these tests need) is not \
         installed in {}/bin nor on PATH: run scripts/setup.sh (scripts/test.sh does)",
        tools.display()
    );
}

impl Moto {
    async fn start() -> Moto {
        let binary = moto_binary();
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let log_dir = tempfile::tempdir().expect("tempdir");
        let log_path = log_dir.path().join("moto.log");
        let log = std::fs::File::create(&log_path).expect("moto log");
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}"), _log_dir: log_dir };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{}/", moto.endpoint)).send().await
                && r.status().is_success()
            {
                return moto;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "moto_server exited ({status}) before answering:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on {} within 60 s:\n{}",
                moto.endpoint,
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates a bucket (moto accepts any credentials, and unsigned requests).
    async fn create_bucket(&self, bucket: &str) {
        let r = reqwest::Client::new().put(format!("{}/{bucket}", self.endpoint)).send().await.unwrap();
        assert!(r.status().is_success(), "create bucket: {} {}", r.status(), r.text().await.unwrap());
    }

    /// The objects in the bucket under `prefix` as (key, size, ETag), straight from the service
    /// (a listing, as moto refuses unsigned reads of private objects).
    async fn list(&self, bucket: &str, prefix: &str) -> Vec<(String, u64, String)> {
        let url = format!("{}/{bucket}?list-type=2&prefix={prefix}/&max-keys=1000", self.endpoint);
        let xml = reqwest::get(url).await.unwrap().error_for_status().unwrap().text().await.unwrap();
        xml.split("<Contents>")
            .skip(1)
            .map(|c| {
                let etag = tag(c, "ETag").replace("&#34;", "").replace("&quot;", "").replace('"', "");
                (tag(c, "Key").to_string(), tag(c, "Size").parse().expect("size"), etag)
            })
            .collect()
    }

    /// The object's ETag (`<md5>-<parts>` after a multipart upload), if it exists.
    async fn etag(&self, bucket: &str, key: &str) -> Option<String> {
        let prefix = key.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
        self.list(bucket, prefix).await.into_iter().find(|o| o.0 == key).map(|o| o.2)
    }
}

fn tag<'a>(xml: &'a str, name: &str) -> &'a str {
    let open = format!("<{name}>");
    let start = xml.find(&open).map(|i| i + open.len()).unwrap_or_else(|| panic!("no <{name}> in {xml}"));
    let end = xml[start..].find('<').map(|i| start + i).expect("closing tag");
    &xml[start..end]
}

/// Where the store puts a blob: `<prefix>/<first two hex digits>/<hex>`.
fn key(data: &[u8]) -> String {
    let hex = hex::encode(Sha256::digest(data));
    format!("{PREFIX}/{}/{hex}", &hex[..2])
}

/// Deterministic bytes that do not repeat (so no part of the multipart upload equals another).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Points the process's `AWS_*` variables at moto. Every test runs in a process of its own under
/// nextest, and this runs before the test starts any other thread that could read them.
fn aws_env(moto: &Moto) {
    for (k, v) in [
        ("AWS_ENDPOINT", moto.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "petrel-test"),
        ("AWS_SECRET_ACCESS_KEY", "petrel-test-secret"),
        ("AWS_REGION", "us-east-1"),
    ] {
        // SAFETY: see above: no other thread of this test process reads the environment now.
        unsafe { std::env::set_var(k, v) };
    }
}

#[tokio::test]
async fn artifacts_live_in_an_s3_bucket_and_clean_up_removes_orphans() {
    let moto = Moto::start().await;
    aws_env(&moto);
    moto.create_bucket(BUCKET).await;
    let location = format!("s3://{BUCKET}/{PREFIX}");
    let s = TestServer::start_with(|c| c.artifact_store = location.clone()).await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("robur", None).await;
    let job = api.job(tenant, "hello", true).await;

    // One artifact under the 8 MiB part size (a single PUT), one well above it (multipart).
    let small = b"\x7fELF small unikernel".repeat(100);
    let large = noise(20 * 1024 * 1024 + 12_345, 0x5eed);
    let build = Api::build(&admin, job, &[("bin/hello.hvt", &small), ("big/disk.img", &large)]).await;
    let build_id = build["id"].as_str().unwrap();

    let listed: Vec<(String, u64)> =
        moto.list(BUCKET, PREFIX).await.into_iter().map(|o| (o.0, o.1)).collect();
    assert!(listed.contains(&(key(&small), small.len() as u64)), "small blob in the bucket: {listed:?}");
    assert!(listed.contains(&(key(&large), large.len() as u64)), "large blob in the bucket: {listed:?}");
    let etag = moto.etag(BUCKET, &key(&large)).await.expect("large object");
    assert!(etag.ends_with("-3"), "20 MiB went up as three parts, ETag {etag}");
    let etag = moto.etag(BUCKET, &key(&small)).await.expect("small object");
    assert!(!etag.contains('-'), "a small artifact is one PUT, ETag {etag}");

    // Downloads stream the bytes back from the bucket, through the API and builder-web's URLs.
    let anon = admin.anonymous();
    for (path, data) in [("bin/hello.hvt", &small), ("big/disk.img", &large)] {
        let r = anon
            .request(Method::GET, &format!("/api/v1/builds/{build_id}/files/{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        assert_eq!(r.headers()["content-length"].to_str().unwrap(), data.len().to_string());
        let body = r.bytes().await.unwrap();
        assert!(
            body.as_ref() == data.as_slice(),
            "{path}: {} bytes back, not the {} sent",
            body.len(),
            data.len()
        );
    }
    let r =
        anon.request(Method::GET, &format!("/job/hello/build/{build_id}/main-binary")).send().await.unwrap();
    assert_eq!(r.status(), 307);
    let main = r.headers()["location"].to_str().unwrap().to_string();
    let r = anon.request(Method::GET, &main).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {main}");
    assert_eq!(r.bytes().await.unwrap().as_ref(), small.as_slice());

    // An aborted upload leaves its object behind until clean-up removes it.
    let upload = Api::open_upload(&admin, job).await;
    let orphan = noise(64 * 1024, 0xdead);
    admin.put_artifact(upload, "bin/orphan.hvt", &orphan).await.expect(201);
    admin.delete(&format!("/api/v1/uploads/{upload}")).await.expect(204);
    assert!(moto.etag(BUCKET, &key(&orphan)).await.is_some(), "the aborted upload's object is stored");

    let store = BlobStore::open(&location, &s.data_dir.path().join("gc-staging")).expect("open the store");
    let orphan_sha = Sha256::digest(&orphan).to_vec();
    assert!(store.exists(&orphan_sha).await.unwrap(), "the API's store sees the orphan");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let report = petrel_api::maintenance::collect_garbage(&s.db.pool, &store, Duration::ZERO).await.unwrap();
    assert!(report.ran, "{report:?}");
    assert_eq!(report.blobs_deleted, 1, "only the orphan goes: {report:?}");
    assert!(moto.etag(BUCKET, &key(&orphan)).await.is_none(), "the orphan's object is deleted");
    assert!(!store.exists(&orphan_sha).await.unwrap());
    let listed = moto.list(BUCKET, PREFIX).await;
    assert_eq!(listed.len(), 2, "the build's two blobs stay: {listed:?}");
    let gone: bool = sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM blobs WHERE sha256 = $1)")
        .bind(&orphan_sha)
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
    assert!(gone, "the orphan's row is deleted");

    // The build's artifacts still download after clean-up.
    let r = anon.get(&format!("/api/v1/builds/{build_id}/files/bin/hello.hvt")).await.expect(200);
    assert_eq!(r.text.as_bytes(), small.as_slice());
}
