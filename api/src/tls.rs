//! HTTPS: either the operator's certificate, or a local CA and server certificate that Petrel
//! generates once in `<data-dir>/tls` so workers, agents and the CLI can pin the CA.

use std::io::BufReader;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("i/o error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key")]
    NoKey { path: PathBuf },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the certificate and key are not usable: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The local CA, as printed at start and pinned by clients.
#[derive(Debug, Clone)]
pub struct LocalCa {
    pub cert_path: PathBuf,
    /// SHA-256 of the CA certificate (DER), colon-separated upper-case hex.
    pub fingerprint: String,
}

/// What the server serves.
pub struct ServerIdentity {
    pub config: rustls::ServerConfig,
    pub local_ca: Option<LocalCa>,
}

pub fn from_files(cert: &Path, key: &Path) -> Result<ServerIdentity, TlsError> {
    let certs = read_certs(cert)?;
    let key = read_key(key)?;
    Ok(ServerIdentity { config: server_config(certs, key)?, local_ca: None })
}

/// Loads the generated CA and server certificate from `dir`, creating them on first use and
/// re-issuing the server certificate when the wanted names change.
pub fn generated(dir: &Path, extra_names: &[String]) -> Result<ServerIdentity, TlsError> {
    create_private_dir(dir)?;
    let ca_cert_path = dir.join("ca.pem");
    let ca_key_path = dir.join("ca.key");
    let ca_name_path = dir.join("ca.name");
    let server_cert_path = dir.join("server.pem");
    let server_key_path = dir.join("server.key");
    let server_names_path = dir.join("server.names");

    let ca_exists = ca_cert_path.is_file() && ca_key_path.is_file() && ca_name_path.is_file();
    let (ca_key, ca_name) = if ca_exists {
        let pem = read_to_string(&ca_key_path)?;
        (KeyPair::from_pem(&pem)?, read_to_string(&ca_name_path)?.trim().to_string())
    } else {
        let key = KeyPair::generate()?;
        let name = format!("Petrel local CA {}", &hex::encode(rand::random::<[u8; 4]>()));
        (key, name)
    };
    // Re-creating the CA certificate from the same name and key yields an issuer with the same
    // subject and key identifier, so certificates it signs chain to the stored ca.pem.
    let ca_cert = ca_params(&ca_name)?.self_signed(&ca_key)?;
    if !ca_exists {
        write_file(&ca_key_path, ca_key.serialize_pem().as_bytes(), 0o600)?;
        write_file(&ca_cert_path, ca_cert.pem().as_bytes(), 0o644)?;
        write_file(&ca_name_path, ca_name.as_bytes(), 0o644)?;
    }

    let names = server_names(extra_names);
    let names_line = names.join(",");
    let current = std::fs::read_to_string(&server_names_path).unwrap_or_default();
    if current.trim() != names_line || !server_cert_path.is_file() || !server_key_path.is_file() {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names[0].clone());
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
        write_file(&server_key_path, key.serialize_pem().as_bytes(), 0o600)?;
        let chain = format!("{}{}", cert.pem(), read_to_string(&ca_cert_path)?);
        write_file(&server_cert_path, chain.as_bytes(), 0o644)?;
        write_file(&server_names_path, names_line.as_bytes(), 0o644)?;
    }

    let ca_der = read_certs(&ca_cert_path)?.remove(0);
    let identity = from_files(&server_cert_path, &server_key_path)?;
    Ok(ServerIdentity {
        config: identity.config,
        local_ca: Some(LocalCa { cert_path: ca_cert_path, fingerprint: fingerprint(&ca_der) }),
    })
}

fn ca_params(name: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "Petrel");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    Ok(params)
}

fn server_names(extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Some(host) = hostname() {
        names.push(host);
    }
    for n in extra {
        let n = n.trim();
        if !n.is_empty() && !names.iter().any(|m| m == n) {
            names.push(n.to_string());
        }
    }
    names
}

fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty() && name != "localhost" && name.parse::<std::net::IpAddr>().is_err())
        .then(|| name.to_string())
}

pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, TlsError> {
    Ok(rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?)
}

pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file = std::fs::File::open(path).map_err(|source| TlsError::Io { path: path.into(), source })?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Io { path: path.into(), source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.into() });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let file = std::fs::File::open(path).map_err(|source| TlsError::Io { path: path.into(), source })?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|source| TlsError::Io { path: path.into(), source })?
        .ok_or_else(|| TlsError::NoKey { path: path.into() })
}

fn read_to_string(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io { path: path.into(), source })
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Io { path: dir.into(), source })
}

/// Writes through a temporary file and a rename, so a crash never leaves half a key.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let io = |source| TlsError::Io { path: path.into(), source };
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
