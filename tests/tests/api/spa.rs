//! The API serves the SPA: its files, `index.html` for client-side routes, and problem+json
//! 404s for unknown API paths.

use petrel_tests::TestServer;

#[tokio::test]
async fn the_spa_is_served_with_a_fallback_to_index_html() {
    let dist = tempfile::tempdir().unwrap();
    std::fs::write(
        dist.path().join("index.html"),
        "<!doctype html><title>Petrel</title><script src=/boot.js></script>",
    )
    .unwrap();
    std::fs::write(dist.path().join("boot.js"), "console.log('hi')").unwrap();
    let dir = dist.path().to_path_buf();
    let s = TestServer::start_with(move |c| c.frontend_dir = Some(dir)).await;
    let c = s.client();
    for route in ["/", "/tenants", "/tenants/5c3e6f1e-8d4b-4a53-9a0e-2f9b8c7d6e5f", "/login"] {
        let r = c.get(route).await.expect(200);
        assert!(r.text.contains("<title>Petrel</title>"), "{route}: {}", r.text);
    }
    let js = c.get("/boot.js").await.expect(200);
    assert!(js.content_type.contains("javascript"), "{}", js.content_type);
    c.get("/api/v1/no-such-thing").await.expect_problem(404, "not-found");
    c.get("/api/other").await.expect_problem(404, "not-found");
    c.get("/api/v1/docs/").await.expect(200);
    c.get("/healthz").await.expect(200);
}
