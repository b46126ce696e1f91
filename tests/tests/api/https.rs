//! HTTPS with the generated local CA: pinned clients connect, others are refused; the CA
//! survives restarts; operator certificates and explicit plain HTTP work too.

use petrel_api::config::Tls;
use petrel_tests::{Client, TestServer};

#[tokio::test]
async fn clients_pinning_the_generated_ca_connect_over_https() {
    let s = TestServer::start().await;
    assert!(s.server.url.starts_with("https://localhost:"), "{}", s.server.url);
    s.client().get("/healthz").await.expect(200);
    // The certificate also names 127.0.0.1.
    let by_ip = Client::new(&format!("https://127.0.0.1:{}", s.server.addr.port()), &s.ca_pem);
    by_ip.get("/healthz").await.expect(200);
    let hsts = s.client().get("/healthz").await.headers.get("strict-transport-security").cloned();
    assert!(hsts.is_some());

    // A client that trusts nothing (no CA, no system roots) refuses the server.
    let untrusting =
        reqwest::Client::builder().use_rustls_tls().tls_built_in_root_certs(false).build().unwrap();
    let err = untrusting.get(s.url("/healthz")).send().await.unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    // Plain HTTP to the TLS port gets no API answer.
    let plain =
        reqwest::Client::new().get(format!("http://127.0.0.1:{}/healthz", s.server.addr.port())).send().await;
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));
}

#[tokio::test]
async fn the_ca_is_kept_and_the_server_certificate_reissued_when_names_change() {
    let dir = tempfile::tempdir().unwrap();
    let first = petrel_api::tls::generated(dir.path(), &[]).unwrap().local_ca.unwrap();
    let again = petrel_api::tls::generated(dir.path(), &[]).unwrap().local_ca.unwrap();
    assert_eq!(first.fingerprint, again.fingerprint);
    let cert_before = std::fs::read(dir.path().join("server.pem")).unwrap();
    let renamed =
        petrel_api::tls::generated(dir.path(), &["petrel.example".into()]).unwrap().local_ca.unwrap();
    assert_eq!(first.fingerprint, renamed.fingerprint);
    assert_ne!(cert_before, std::fs::read(dir.path().join("server.pem")).unwrap());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("server.names")).unwrap().split(',').next_back(),
        Some("petrel.example")
    );
    use std::os::unix::fs::PermissionsExt;
    for key in ["ca.key", "server.key"] {
        let mode = std::fs::metadata(dir.path().join(key)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
}

#[tokio::test]
async fn operator_certificates_are_served_as_given() {
    let certs = tempfile::tempdir().unwrap();
    let ca = petrel_api::tls::generated(certs.path(), &[]).unwrap().local_ca.unwrap();
    let (cert, key) = (certs.path().join("server.pem"), certs.path().join("server.key"));
    let s = TestServer::start_with(|c| c.tls = Tls::Files { cert, key }).await;
    assert!(s.server.local_ca.is_none());
    let pinned = Client::new(&s.server.url, &std::fs::read(&ca.cert_path).unwrap());
    pinned.get("/healthz").await.expect(200);
}

#[tokio::test]
async fn plain_http_is_served_only_when_configured() {
    let s = TestServer::start_with(|c| c.tls = Tls::PlainHttp).await;
    assert!(s.server.url.starts_with("http://"), "{}", s.server.url);
    let r = reqwest::get(s.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("strict-transport-security").is_none());
}
