//! Serving certificates (from files, or self-signed like upstream's
//! `MaybeDefaultWithSelfSignedCerts`) and the rustls server config.
//!
//! Client certificates are requested but optional at the TLS layer: the
//! handshake only proves possession of the key, and the chain is verified
//! later by the authenticator against `--client-ca-file` or the
//! request-header CA, exactly as Go's `tls.RequestClientCert` + x509
//! authenticator do.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("failed to write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("no PEM {what} found in {path}")]
    NoPem { what: &'static str, path: String },
    #[error("failed to generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("invalid TLS configuration: {0}")]
    Config(String),
    #[error("unsupported --tls-min-version {0:?} (allowed: VersionTLS12, VersionTLS13)")]
    MinVersion(String),
    #[error("no supported cipher suite in --tls-cipher-suites")]
    NoCipherSuites,
}

/// A certificate chain (leaf first) and its key.
#[derive(Debug)]
pub struct ServingCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone, Default)]
pub struct CertSource {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// `--cert-dir`; empty keeps a generated pair in memory only.
    pub cert_dir: PathBuf,
    /// Base file name in `cert_dir` (`kube-scheduler` → `kube-scheduler.crt`).
    pub pair_name: String,
    /// Host the self-signed certificate is for (upstream: `localhost`).
    pub host: String,
    pub alternate_ips: Vec<IpAddr>,
    pub alternate_dns: Vec<String>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Parses a PEM certificate chain and private key.
pub fn parse_pem_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    origin: &str,
) -> Result<ServingCert, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoPem {
            what: "certificate",
            path: origin.to_string(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsError::NoPem {
        what: "private key",
        path: origin.to_string(),
    })?;
    Ok(ServingCert { chain, key })
}

/// Parses every certificate of a PEM CA bundle file.
pub fn load_ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = parse_ca_bundle(&read(path)?);
    if certs.is_empty() {
        return Err(TlsError::NoPem {
            what: "certificate",
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

/// Parses every certificate of PEM text (invalid blocks are skipped).
pub fn parse_ca_bundle(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// Loads `--tls-cert-file`/`--tls-private-key-file`, or reuses/creates a
/// self-signed pair in `--cert-dir` (in memory when it is empty).
pub fn load_or_generate(source: &CertSource) -> Result<ServingCert, TlsError> {
    if let (Some(cert), Some(key)) = (&source.cert_file, &source.key_file) {
        return parse_pem_pair(&read(cert)?, &read(key)?, &cert.display().to_string());
    }
    let on_disk = (!source.cert_dir.as_os_str().is_empty()).then(|| {
        (
            source.cert_dir.join(format!("{}.crt", source.pair_name)),
            source.cert_dir.join(format!("{}.key", source.pair_name)),
        )
    });
    if let Some((cert, key)) = &on_disk
        && cert.exists()
        && key.exists()
    {
        return parse_pem_pair(&read(cert)?, &read(key)?, &cert.display().to_string());
    }
    let (cert_pem, key_pem) =
        generate_self_signed(&source.host, &source.alternate_ips, &source.alternate_dns)?;
    if let Some((cert, key)) = &on_disk {
        write_pair(cert, key, &cert_pem, &key_pem)?;
        tracing::info!(cert = %cert.display(), key = %key.display(), "Generated self-signed cert");
    } else {
        tracing::info!(host = %source.host, "Generated self-signed cert (in-memory)");
    }
    parse_pem_pair(cert_pem.as_bytes(), key_pem.as_bytes(), "generated")
}

fn write_pair(cert: &Path, key: &Path, cert_pem: &str, key_pem: &str) -> Result<(), TlsError> {
    let write = |path: &Path, data: &str, mode: u32| -> Result<(), TlsError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let err = |source| TlsError::Write {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, data.as_bytes()))
            .map_err(err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)
    };
    write(cert, cert_pem, 0o644)?;
    write(key, key_pem, 0o600)
}

/// Generates a CA (`<host>-ca@<unix>`) and a serving certificate
/// (`<host>@<unix>`) it signs, valid from yesterday for a year, like
/// client-go's `GenerateSelfSignedCertKey` (ECDSA P-256 instead of RSA 2048,
/// which ring cannot generate). Returns (leaf + CA PEM, key PEM).
pub fn generate_self_signed(
    host: &str,
    alternate_ips: &[IpAddr],
    alternate_dns: &[String],
) -> Result<(String, String), TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };
    let gen_err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let now = jiff::Timestamp::now();
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let validity = |params: &mut CertificateParams| -> Result<(), TlsError> {
        let start = today
            .yesterday()
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let end = today
            .checked_add(jiff::Span::new().years(1))
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let to_rcgen = |d: jiff::civil::Date| {
            rcgen::date_time_ymd(i32::from(d.year()), d.month() as u8, d.day() as u8)
        };
        params.not_before = to_rcgen(start);
        params.not_after = to_rcgen(end);
        Ok(())
    };
    let unix = now.as_second();

    let ca_key = KeyPair::generate().map_err(gen_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{host}-ca@{unix}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    validity(&mut ca_params)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(gen_err)?;

    let key = KeyPair::generate().map_err(gen_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{host}@{unix}"));
    params.key_usages = vec![
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let mut sans = Vec::new();
    match host.parse::<IpAddr>() {
        Ok(ip) => sans.push(SanType::IpAddress(ip)),
        Err(_) => sans.push(SanType::DnsName(host.try_into().map_err(gen_err)?)),
    }
    sans.extend(alternate_ips.iter().map(|ip| SanType::IpAddress(*ip)));
    for dns in alternate_dns {
        sans.push(SanType::DnsName(dns.as_str().try_into().map_err(gen_err)?));
    }
    params.subject_alt_names = sans;
    validity(&mut params)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).map_err(gen_err)?;
    Ok((
        format!("{}{}", cert.pem(), ca_cert.pem()),
        key.serialize_pem(),
    ))
}

/// Maps Go's `--tls-min-version` names to rustls protocol versions.
pub fn protocol_versions(
    min_version: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
    match min_version.unwrap_or("") {
        "" | "VersionTLS12" => Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]),
        "VersionTLS10" | "VersionTLS11" => {
            tracing::warn!(
                min_version = min_version.unwrap_or_default(),
                "TLS 1.0/1.1 are not supported; using VersionTLS12"
            );
            Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12])
        }
        "VersionTLS13" => Ok(vec![&rustls::version::TLS13]),
        other => Err(TlsError::MinVersion(other.to_string())),
    }
}

/// The rustls name of a suite in Go's IANA spelling.
fn go_name(suite: &rustls::SupportedCipherSuite) -> String {
    let name = format!("{:?}", suite.suite());
    name.replace("TLS13_", "TLS_")
}

/// Restricts the TLS 1.2 suites to `--tls-cipher-suites` (TLS 1.3 suites are
/// not configurable, as in Go). Names rustls does not implement are skipped
/// with a warning.
pub fn select_cipher_suites(
    available: &[rustls::SupportedCipherSuite],
    requested: &[String],
) -> Result<Vec<rustls::SupportedCipherSuite>, TlsError> {
    if requested.is_empty() {
        return Ok(available.to_vec());
    }
    let normalise = |s: &str| s.trim_end_matches("_SHA256").to_string();
    let matches = |suite: &rustls::SupportedCipherSuite, name: &str| {
        normalise(&go_name(suite)) == normalise(name)
    };
    let mut matched_any = false;
    for name in requested {
        if available.iter().any(|s| matches(s, name)) {
            matched_any = true;
        } else {
            tracing::warn!(cipher_suite = %name, "cipher suite not supported; ignoring it");
        }
    }
    if !matched_any {
        return Err(TlsError::NoCipherSuites);
    }
    let selected: Vec<_> = available
        .iter()
        .filter(|s| {
            s.version() == &rustls::version::TLS13 || requested.iter().any(|n| matches(s, n))
        })
        .copied()
        .collect();
    Ok(selected)
}

/// Accepts any client certificate at handshake time (signature over the
/// handshake still verified); the authenticator validates the chain.
#[derive(Debug)]
struct RequestClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Builds the server config: h2 + http/1.1, optional client certificates.
pub fn server_config(
    cert: ServingCert,
    cipher_suites: &[String],
    min_version: Option<&str>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let base = rustls::crypto::ring::default_provider();
    let provider = CryptoProvider {
        cipher_suites: select_cipher_suites(&base.cipher_suites, cipher_suites)?,
        ..base
    };
    let verifier = Arc::new(RequestClientCert {
        algorithms: provider.signature_verification_algorithms,
    });
    let versions = protocol_versions(min_version)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(cert.chain, cert.key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    #[test]
    fn self_signed_matches_upstream_shape() {
        let ips = ["127.0.0.1".parse().expect("ip")];
        let (cert_pem, key_pem) = generate_self_signed("localhost", &ips, &[]).expect("generates");
        let pair = parse_pem_pair(cert_pem.as_bytes(), key_pem.as_bytes(), "t").expect("parses");
        assert_eq!(pair.chain.len(), 2, "leaf followed by its CA");
        let (_, leaf) = X509Certificate::from_der(&pair.chain[0]).expect("der");
        let cn = leaf
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .expect("cn");
        assert!(cn.starts_with("localhost@"), "{cn}");
        let (_, ca) = X509Certificate::from_der(&pair.chain[1]).expect("der");
        assert_eq!(leaf.issuer(), ca.subject());
        let san = leaf
            .subject_alternative_name()
            .expect("ext")
            .expect("san present");
        let names = &san.value.general_names;
        assert!(
            names.contains(&GeneralName::DNSName("localhost")),
            "{names:?}"
        );
        assert!(
            names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])),
            "{names:?}"
        );
        server_config(pair, &[], None).expect("usable by rustls");
    }

    #[test]
    fn cert_dir_pair_is_written_then_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = CertSource {
            cert_dir: dir.path().to_path_buf(),
            pair_name: "kube-scheduler".into(),
            host: "localhost".into(),
            ..CertSource::default()
        };
        let first = load_or_generate(&source).expect("generates");
        assert!(dir.path().join("kube-scheduler.crt").exists());
        let second = load_or_generate(&source).expect("reuses");
        assert_eq!(first.chain, second.chain);
    }

    #[test]
    fn min_versions() {
        assert_eq!(protocol_versions(None).expect("default").len(), 2);
        assert_eq!(
            protocol_versions(Some("VersionTLS13")).expect("13").len(),
            1
        );
        assert!(protocol_versions(Some("VersionTLS99")).is_err());
    }

    #[test]
    fn cipher_suite_selection() {
        let all = rustls::crypto::ring::default_provider().cipher_suites;
        let picked = select_cipher_suites(
            &all,
            &[
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(),
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305".into(),
                "TLS_RSA_WITH_RC4_128_SHA".into(),
            ],
        )
        .expect("some supported");
        let names: Vec<String> = picked.iter().map(go_name).collect();
        assert!(names.contains(&"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()));
        assert!(names.contains(&"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256".to_string()));
        assert!(!names.contains(&"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_string()));
        assert!(
            names.iter().any(|n| n == "TLS_AES_128_GCM_SHA256"),
            "TLS 1.3 kept"
        );
    }
}
