//! HTTPS to the API: a reqwest client that trusts exactly the configured CA (or the system's
//! roots), carries the token, and the generated client on top of it. Also `login`'s trust on
//! first use by fingerprint: the CA is taken from the server's chain only when its SHA-256
//! equals the one the user was given (printed by `petrel-api` at start).

use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::generated::Client;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    BadCa(petrel_wire::http::ClientError),
    #[error("the token contains characters a header cannot carry")]
    BadToken,
    #[error("{0} is not an https:// URL with a host")]
    BadUrl(String),
    #[error("HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("{0:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed)")]
    BadFingerprint(String),
    #[error("connecting to {host}: {source}")]
    Io { host: String, source: std::io::Error },
    #[error("TLS with {host}: {source}")]
    Tls { host: String, source: rustls::Error },
    #[error(
        "no certificate in the chain {host} presents has the SHA-256 fingerprint {fingerprint}; it presents {found}"
    )]
    FingerprintMismatch { host: String, fingerprint: String, found: String },
}

/// A reqwest client for `url`'s API: the CA's PEM when given, else the system's roots.
pub fn http(ca_pem: Option<&str>, token: Option<&str>) -> Result<reqwest::Client, ConnectError> {
    let agent = concat!("petrel/", env!("CARGO_PKG_VERSION"));
    let mut builder = petrel_wire::http::pinned_client(ca_pem.map(str::as_bytes), agent)
        .map_err(ConnectError::BadCa)?
        .redirect(reqwest::redirect::Policy::none());
    if let Some(token) = token {
        let mut headers = HeaderMap::new();
        let mut value =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| ConnectError::BadToken)?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
        builder = builder.default_headers(headers);
    }
    builder.build().map_err(ConnectError::Client)
}

pub fn client(url: &str, http: reqwest::Client) -> Client {
    Client::new_with_client(url.trim_end_matches('/'), http)
}

/// Normalises `AA:bb:...` or `aabb...` to lowercase hex.
pub fn parse_fingerprint(text: &str) -> Result<String, ConnectError> {
    let hex: String = text.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(ConnectError::BadFingerprint(text.into()))
    }
}

/// The PEM of the certificate in `url`'s TLS chain whose SHA-256 is `fingerprint`.
pub fn fetch_pinned_ca(url: &str, fingerprint: &str) -> Result<String, ConnectError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| ConnectError::BadUrl(url.into()))?;
    let host =
        parsed.host_str().filter(|_| parsed.scheme() == "https").ok_or(ConnectError::BadUrl(url.into()))?;
    let port = parsed.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let capture = Arc::new(CaptureChain { chain: Mutex::default(), provider: provider.clone() });
    let tls = |source| ConnectError::Tls { host: host.clone(), source };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.clone()).map_err(|_| ConnectError::BadUrl(url.into()))?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(tls)?;
    let io = |source| ConnectError::Io { host: host.clone(), source };
    let mut socket = TcpStream::connect((host.as_str(), port)).map_err(io)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut socket).map_err(io)?;
    }
    let chain = capture.chain.lock().expect("not poisoned").clone();
    let mut found = Vec::new();
    for cert in &chain {
        let hex = hex::encode(Sha256::digest(cert.as_ref()));
        if hex == fingerprint {
            return Ok(pem(cert.as_ref()));
        }
        found.push(hex);
    }
    Err(ConnectError::FingerprintMismatch { host, fingerprint: fingerprint.into(), found: found.join(", ") })
}

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Accepts any chain but remembers it: only used to find the pinned certificate, after which
/// every connection verifies against it normally. Signatures are still checked, so the peer
/// holds the key of the certificate it shows.
#[derive(Debug)]
struct CaptureChain {
    chain: Mutex<Vec<CertificateDer<'static>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for CaptureChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = self.chain.lock().expect("not poisoned");
        chain.push(end_entity.clone().into_owned());
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
