//! `--web-config FILE`: TLS and basic auth for the agent's endpoint, in the
//! YAML format of Prometheus's exporter-toolkit (node_exporter's
//! `--web.config.file`), so a file written for an exporter works here:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths: from the file's folder
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # or VerifyClientCertIfGiven, NoClientCert
//!   client_ca_file: ca.crt
//!   min_version: TLS12             # TLS12 or TLS13
//! basic_auth_users:
//!   prometheus: $2y$10$...         # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':\n')
//! ```
//!
//! What exporter-toolkit takes and this does not (`cipher_suites`,
//! `curve_preferences`, `client_allowed_sans`, response `headers`, TLS 1.0
//! and 1.1, the client auth types that skip verification) is refused with a
//! line saying so, never ignored: a setting that silently does nothing is a
//! hole.
use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use anyhow::{bail, Context as _, Result};
use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::WebPkiClientVerifier,
    RootCertStore, ServerConfig,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// The largest web config file read.
const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    http_server_config: Option<HttpFile>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
    max_version: Option<String>,
    /// Accepted for compatibility: rustls always picks by its own order.
    prefer_server_cipher_suites: Option<bool>,
    cert: Option<serde_yaml_ng::Value>,
    key: Option<serde_yaml_ng::Value>,
    client_ca: Option<serde_yaml_ng::Value>,
    cipher_suites: Option<serde_yaml_ng::Value>,
    curve_preferences: Option<serde_yaml_ng::Value>,
    client_allowed_sans: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    /// Accepted: the agent speaks HTTP/1.1 only (what Prometheus scrapes with).
    http2: Option<bool>,
    headers: Option<serde_yaml_ng::Value>,
}

/// What the endpoint enforces.
pub struct WebConfig {
    pub tls: Option<Arc<ServerConfig>>,
    pub basic_auth: Option<Arc<BasicAuth>>,
}

impl WebConfig {
    /// Reads and checks `path`; every error is one line that names the file
    /// and the setting.
    pub fn load(path: &Path) -> Result<WebConfig> {
        let at = |what: &str| format!("--web-config {}: {what}", path.display());
        let text = crate::small_file::read_text(path, MAX_FILE_BYTES)
            .map_err(|err| anyhow::anyhow!("{}: {err:#}", at("reading it")))?;
        // exporter-toolkit serves plain HTTP for an empty file (or one that
        // sets neither): refused here, since whoever passes a web config
        // means TLS or a password.
        let neither = "sets neither tls_server_config nor basic_auth_users: give one, or drop --web-config for plain HTTP";
        if text.trim().is_empty() {
            bail!(at(&format!("the file is empty, so it {neither}")));
        }
        let file: File = serde_yaml_ng::from_str(&text)
            .map_err(|err| anyhow::anyhow!("{}", crate::words::one_line(&err.to_string())))
            .with_context(|| at("not a web config"))?;
        if let Some(http) = &file.http_server_config {
            let _ = http.http2;
            if http.headers.is_some() {
                bail!(at("http_server_config.headers is not supported: remove it"));
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = match &file.tls_server_config {
            Some(tls) => {
                Some(Arc::new(server_config(tls, base).map_err(|err| {
                    anyhow::anyhow!("{}: {err:#}", at("tls_server_config"))
                })?))
            }
            None => None,
        };
        let basic_auth = match file.basic_auth_users {
            Some(users) if !users.is_empty() => {
                for (user, hash) in &users {
                    hash.parse::<bcrypt::HashParts>().map_err(|_| {
                        anyhow::anyhow!(
                            "{}",
                            at(&format!(
                                "basic_auth_users.{user} is not a bcrypt hash (make one with htpasswd -nBC 10 \"\" | tr -d ':\\n')"
                            ))
                        )
                    })?;
                }
                Some(Arc::new(BasicAuth::new(users)))
            }
            _ => None,
        };
        if tls.is_none() && basic_auth.is_none() {
            bail!(at(&format!("it {neither}")));
        }
        Ok(WebConfig { tls, basic_auth })
    }
}

fn server_config(tls: &TlsFile, base: &Path) -> Result<ServerConfig> {
    for (name, given) in [
        ("cert (inline)", tls.cert.is_some()),
        ("key (inline)", tls.key.is_some()),
        ("client_ca (inline)", tls.client_ca.is_some()),
        ("cipher_suites", tls.cipher_suites.is_some()),
        ("curve_preferences", tls.curve_preferences.is_some()),
        ("client_allowed_sans", tls.client_allowed_sans.is_some()),
    ] {
        if given {
            bail!("{name} is not supported: remove it (give cert_file and key_file; rustls offers only modern suites and curves)");
        }
    }
    let _ = tls.prefer_server_cipher_suites;
    // What needs no file is checked before any file is read.
    let auth_type = tls.client_auth_type.as_deref().unwrap_or("NoClientCert");
    match auth_type {
        "NoClientCert" | "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {}
        "RequestClientCert" | "RequireAnyClientCert" => bail!(
            "client_auth_type {auth_type} accepts certificates it does not verify, which this agent does not do: use RequireAndVerifyClientCert with client_ca_file"
        ),
        other => bail!(
            "client_auth_type {other:?} is not one of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
        ),
    }
    let versions = versions(tls.min_version.as_deref(), tls.max_version.as_deref())?;
    let file = |name: &str, path: &Option<PathBuf>| -> Result<PathBuf> {
        let path = path
            .as_ref()
            .with_context(|| format!("{name} is missing"))?;
        Ok(base.join(path))
    };
    let cert_file = file("cert_file", &tls.cert_file)?;
    let key_file = file("key_file", &tls.key_file)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|err| anyhow::anyhow!("cert_file {}: {err}", cert_file.display()))?;
    if certs.is_empty() {
        bail!(
            "cert_file {}: no PEM certificate in it",
            cert_file.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .map_err(|err| anyhow::anyhow!("key_file {}: {err}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .context("the TLS versions")?;
    let client_ca = || -> Result<Arc<RootCertStore>> {
        let path = file("client_ca_file", &tls.client_ca_file)?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&path)
            .map_err(|err| anyhow::anyhow!("client_ca_file {}: {err}", path.display()))?
        {
            let cert =
                cert.map_err(|err| anyhow::anyhow!("client_ca_file {}: {err}", path.display()))?;
            roots
                .add(cert)
                .map_err(|err| anyhow::anyhow!("client_ca_file {}: {err}", path.display()))?;
        }
        Ok(Arc::new(roots))
    };
    let builder = match auth_type {
        "NoClientCert" if tls.client_ca_file.is_none() => builder.with_no_client_auth(),
        "NoClientCert" => bail!("client_ca_file is given but client_auth_type is NoClientCert: set RequireAndVerifyClientCert or VerifyClientCertIfGiven"),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let verifier = WebPkiClientVerifier::builder_with_provider(client_ca()?, provider);
            let verifier = match auth_type {
                "VerifyClientCertIfGiven" => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            builder.with_client_cert_verifier(verifier.build().context("client_ca_file")?)
        }
        _ => unreachable!("checked above"),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("cert_file and key_file do not make a certificate and its key")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The protocol versions from `min_version` to `max_version`.
fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>> {
    let rank = |name: &str, given: Option<&str>, default: u8| -> Result<u8> {
        match given {
            None => Ok(default),
            Some("TLS12") => Ok(12),
            Some("TLS13") => Ok(13),
            Some("TLS10" | "TLS11") => {
                bail!(
                    "{name} {}: TLS before 1.2 is not offered",
                    given.unwrap_or("")
                )
            }
            Some(other) => bail!("{name} {other:?} is not TLS12 or TLS13"),
        }
    };
    let (min, max) = (rank("min_version", min, 12)?, rank("max_version", max, 13)?);
    let versions: Vec<_> = [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(rank, _)| (min..=max).contains(rank))
        .map(|(_, version)| version)
        .collect();
    if versions.is_empty() {
        bail!("min_version is above max_version");
    }
    Ok(versions)
}

/// Basic auth against bcrypt hashes. bcrypt is slow on purpose (tens of ms
/// a check), so a password that matched is remembered by a digest (as
/// exporter-toolkit caches it), and at most [`CHECKS_AT_ONCE`] checks run at
/// once: a flood of wrong passwords costs a bounded share of the CPU.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<HashSet<[u8; 32]>>,
    checks: Semaphore,
    /// Checked against for an unknown user, so its answer takes as long as
    /// a known user's with a wrong password.
    unknown_user: String,
}

const CHECKS_AT_ONCE: usize = 2;
/// Verified credentials remembered at most (then forgotten together).
const REMEMBERED: usize = 64;

impl BasicAuth {
    fn new(users: BTreeMap<String, String>) -> BasicAuth {
        let cost = users
            .values()
            .find_map(|hash| hash.parse::<bcrypt::HashParts>().ok())
            .map_or(bcrypt::DEFAULT_COST, |parts| parts.get_cost());
        let unknown_user = bcrypt::hash("", cost).unwrap_or_default();
        BasicAuth {
            unknown_user,
            users,
            verified: Mutex::default(),
            checks: Semaphore::new(CHECKS_AT_ONCE),
        }
    }

    /// Whether an `Authorization` header names a user and its password.
    pub async fn allows(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(credentials) else {
            return false;
        };
        let hash = self.users.get(&user).cloned();
        let digest: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .chain_update([0])
            .chain_update(hash.as_deref().unwrap_or("").as_bytes())
            .finalize()
            .into();
        if hash.is_some() && self.remembered().contains(&digest) {
            return true;
        }
        let Ok(_turn) = self.checks.acquire().await else {
            return false;
        };
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.unknown_user.clone());
        let matched = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .is_ok_and(|verified| verified.unwrap_or(false));
        if matched && known {
            let mut remembered = self.remembered();
            if remembered.len() >= REMEMBERED {
                remembered.clear();
            }
            remembered.insert(digest);
        }
        matched && known
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `Basic base64(user:password)` -> (user, password).
fn credentials(header: &HeaderValue) -> Option<(String, String)> {
    let encoded = header.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The middleware in front of `/metrics` when basic auth is configured.
pub async fn require_basic_auth(
    State(auth): State<Arc<BasicAuth>>,
    request: Request,
    next: Next,
) -> Response {
    if auth
        .allows(request.headers().get(header::AUTHORIZATION))
        .await
    {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"inotify-trace\"")],
        "unauthorized\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<WebConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, yaml).unwrap();
        WebConfig::load(&path)
    }

    fn error(yaml: &str) -> String {
        match load(yaml) {
            Ok(_) => panic!("accepted: {yaml}"),
            Err(err) => format!("{err:#}"),
        }
    }

    /// exporter-toolkit would serve these as plain HTTP, silently.
    #[test]
    fn a_file_that_sets_neither_tls_nor_passwords_is_refused() {
        assert!(error("").contains("the file is empty, so it sets neither"));
        for yaml in [
            "{}",
            "basic_auth_users: {}",
            "http_server_config:\n  http2: true",
        ] {
            let err = error(yaml);
            assert!(
                err.contains("it sets neither tls_server_config nor basic_auth_users"),
                "{yaml}: {err}"
            );
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }

    #[test]
    fn bad_files_are_one_line_errors_naming_the_setting() {
        for (yaml, says) in [
            ("tls_server_config: [", "not a web config"),
            ("tls_server_confg: {}", "unknown field `tls_server_confg`"),
            ("tls_server_config:\n  key_file: k", "cert_file is missing"),
            (
                "tls_server_config:\n  cert_file: /nonexistent/c\n  key_file: k",
                "cert_file /nonexistent/c",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites: [X]",
                "cipher_suites is not supported",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAnyClientCert",
                "does not verify",
            ),
            ("basic_auth_users:\n  alice: plaintext", "basic_auth_users.alice is not a bcrypt hash"),
            ("http_server_config:\n  headers: {X: y}", "headers is not supported"),
        ] {
            let err = error(yaml);
            assert!(err.contains(says), "{yaml:?} said {err:?}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.starts_with("--web-config "), "{err}");
        }
    }

    #[test]
    fn versions_go_from_min_to_max() {
        assert_eq!(versions(None, None).unwrap().len(), 2);
        assert_eq!(
            versions(Some("TLS13"), None).unwrap(),
            [&rustls::version::TLS13]
        );
        assert!(versions(Some("TLS10"), None).is_err());
        assert!(versions(Some("TLS13"), Some("TLS12")).is_err());
    }

    #[tokio::test]
    async fn basic_auth_takes_the_right_password_only() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth::new([("prom".to_owned(), hash)].into());
        let header = |user: &str, password: &str| {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
        };
        assert!(auth.allows(Some(&header("prom", "s3cret"))).await);
        // Remembered, and still right.
        assert!(auth.allows(Some(&header("prom", "s3cret"))).await);
        assert!(!auth.allows(Some(&header("prom", "wrong"))).await);
        assert!(!auth.allows(Some(&header("nobody", "s3cret"))).await);
        assert!(!auth.allows(None).await);
        assert!(
            !auth
                .allows(Some(&HeaderValue::from_static("Basic !!!")))
                .await
        );
    }
}
