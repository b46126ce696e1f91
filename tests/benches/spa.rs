//! The SPA's time to first render on loopback: a real headless Chromium loads a page of the
//! real API over HTTPS, and the app marks `data-rendered` on `<html>` (milliseconds since the
//! navigation started, from `performance.now()`) once its first page is drawn. Prints figures,
//! never asserts on time.
//!
//! `scripts/build-frontend.sh && cargo bench -p petrel-tests --bench spa`
//! (`PETREL_BENCH_LOADS`, default 20). The first load fetches and compiles the wasm; the others
//! may use the browser's cache, as a returning user's would.

use std::time::{Duration, Instant};

use petrel_tests::TestServer;
use petrel_tests::browser::{Browser, frontend_dist};

fn main() {
    let loads: usize = std::env::var("PETREL_BENCH_LOADS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let dist = frontend_dist();
        let wasm = std::fs::metadata(dist.join("petrel_bg.wasm")).map(|m| m.len()).unwrap_or(0);
        let s = TestServer::start_with(move |c| c.frontend_dir = Some(dist)).await;
        let key = std::fs::read_to_string(s.data_dir.path().join("tls/server.key")).unwrap();
        let b = Browser::start(&s.server.url, &key).await;
        // Signed out: the sign-in page; signed in: the tenants page.
        let cold = first_render(&b, "/login").await;
        b.sign_in("admin", &s.admin_password).await;
        let mut signed_in = Vec::new();
        for _ in 0..loads {
            signed_in.push(first_render(&b, "/tenants").await);
        }
        signed_in.sort_unstable();
        let p = |q: f64| signed_in[((signed_in.len() - 1) as f64 * q).round() as usize];
        println!("SPA time to first render on loopback (wasm {wasm} bytes before gzip):");
        println!("  first load, signed out (/login, empty cache): {cold} ms");
        println!(
            "  signed in (/tenants), {loads} loads: p50 {} ms, p90 {} ms, min {} ms, max {} ms",
            p(0.5),
            p(0.9),
            signed_in[0],
            signed_in[signed_in.len() - 1]
        );
        println!("  (goal: first render under 1 s; figures, not assertions)");
        petrel_wire::perf::record(
            "spa",
            "time to first render, signed in, loopback",
            &format!("p50 {} ms, p90 {} ms", p(0.5), p(0.9)),
            "< 1 s",
        );
        petrel_wire::perf::record(
            "spa",
            "first load, signed out, empty cache",
            &format!("{cold} ms"),
            "< 1 s",
        );
    });
}

/// Loads `path` and returns the app's `data-rendered` mark.
async fn first_render(b: &Browser, path: &str) -> u64 {
    b.goto(path).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(ms) =
            b.attribute(&b.find("html").await, "data-rendered").await.and_then(|v| v.parse().ok())
        {
            return ms;
        }
        assert!(Instant::now() < deadline, "{path} never marked its first render");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
