//! Authentication: the tower layer that runs before every handler.
//!
//! For a call to anything but health and reflection, [`Authenticator`]
//! turns the `authorization` header, or the client certificate of a mutual
//! TLS connection, into a [`Caller`] (or answers `UNAUTHENTICATED` itself,
//! without reaching the service), puts it in the request's extensions and
//! removes the header: past this layer no code holds the key, so none can
//! log it. Failures are logged with the key id (the lookup half of the key,
//! never the secret) or the certificate's fingerprint, and the reason; the
//! client is told as little: a key whose secret does not match is "invalid"
//! whether or not its id exists, and only the holder of a correct secret is
//! told that it expired or was revoked.
//!
//! Credentials, in order: an API key if the call sends one; otherwise the
//! client certificate; otherwise none (`UNAUTHENTICATED`). A call that
//! presents both must pass with both, and they must name the same
//! principal: every credential presented is checked, none is ignored.
//!
//! The certificate comes from the connection: with `--tls-client-ca`,
//! rustls verifies it against the client CA during the handshake (one that
//! does not chain is refused there), and tonic puts the connection's
//! [`TlsConnectInfo`] into every request's extensions *outside* the layers
//! of `Server::builder().layer(..)`, so this layer finds it. Its first
//! certificate is the client's own; its SHA-256 names a principal.
//!
//! In development mode (no principals file) every call gets
//! [`Caller::development`].

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};

use chrono::Utc;
use tonic::Status;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::cert::{CertEntry, CertFingerprint};
use super::key::{KeyEntry, KeyState, SALT_BYTES, hash_secret, parse_bearer};
use super::{AuthError, Caller, Policy, Principals};

/// Paths served without authentication: liveness and discovery.
const OPEN_PREFIXES: [&str; 2] = ["/grpc.health.v1.Health/", "/grpc.reflection.v1.ServerReflection/"];

/// What `UNAUTHENTICATED` says for a missing header.
const MISSING: &str = "missing API key: send `authorization: Bearer <key>` metadata";
/// What `UNAUTHENTICATED` says for any key that does not verify.
const INVALID: &str = "invalid API key";
/// What `UNAUTHENTICATED` says for a verified certificate of no principal.
const UNBOUND_CERT: &str = "client certificate is not bound to a principal";
/// What `UNAUTHENTICATED` says for a revoked certificate.
const REVOKED_CERT: &str = "client certificate revoked";
/// What `UNAUTHENTICATED` says when the credentials disagree.
const MISMATCH: &str = "API key and client certificate name different principals";

/// Keys by id and client certificates by fingerprint, each with its
/// principal's caller, and the file they came from with its append rules:
/// one snapshot, swapped whole on a reload.
#[derive(Default)]
struct KeyIndex {
    keys: HashMap<String, (Caller, KeyEntry)>,
    certs: HashMap<CertFingerprint, (Caller, CertEntry)>,
    principals: Arc<Principals>,
    policy: Arc<Policy>,
}

impl KeyIndex {
    fn new(principals: Principals) -> KeyIndex {
        let mut keys = HashMap::new();
        let mut certs = HashMap::new();
        for principal in &principals.principals {
            let caller =
                Caller::principal_with_limits(principal.name.clone(), principal.grants.clone(), principal.limits);
            for key in &principal.keys {
                keys.insert(key.id.clone(), (caller.clone(), key.clone()));
            }
            for cert in &principal.certs {
                certs.insert(cert.sha256, (caller.clone(), cert.clone()));
            }
        }
        KeyIndex {
            keys,
            certs,
            policy: Arc::new(Policy::new(&principals)),
            principals: Arc::new(principals),
        }
    }
}

/// What identifies a version of the file: a rewrite (rename) changes the
/// inode, an edit in place the size or modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    len: u64,
    modified_ns: i128,
}

fn stamp(path: &Path) -> std::io::Result<FileStamp> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path)?;
    Ok(FileStamp {
        inode: meta.ino(),
        len: meta.len(),
        modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    })
}

/// A reload of the principals file that an outside edit caused.
#[derive(Debug)]
pub struct Reloaded {
    /// The file as it was in force before.
    pub previous: Arc<Principals>,
    /// The file now in force.
    pub current: Arc<Principals>,
    /// BLAKE3 of the file's bytes as read.
    pub digest: blake3::Hash,
}

enum Mode {
    Development,
    Principals {
        path: PathBuf,
        index: RwLock<Arc<KeyIndex>>,
        loaded: Mutex<Option<FileStamp>>,
    },
}

/// Turns `authorization` headers into callers.
pub struct Authenticator {
    mode: Mode,
    /// Hashed for an unknown key id, so that an unknown id costs the same
    /// time as a known one with a wrong secret.
    decoy: KeyEntry,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.mode {
            Mode::Development => f.write_str("Authenticator(development)"),
            Mode::Principals { path, .. } => write!(f, "Authenticator({})", path.display()),
        }
    }
}

fn decoy() -> KeyEntry {
    KeyEntry {
        id: "decoy".to_string(),
        salt: [0; SALT_BYTES],
        hash: hash_secret(&[0; SALT_BYTES], "decoy", &[0; 32]),
        created_at: Utc::now(),
        expires_at: None,
        revoked_at: None,
    }
}

impl Authenticator {
    /// No principals: every caller may do everything.
    pub fn development() -> Authenticator {
        Authenticator {
            mode: Mode::Development,
            decoy: decoy(),
        }
    }

    /// Principals and keys from the file at `path`.
    pub fn from_file(path: &Path) -> Result<Authenticator, AuthError> {
        let loaded = stamp(path).ok();
        let principals = Principals::load(path)?;
        Ok(Authenticator {
            mode: Mode::Principals {
                path: path.to_path_buf(),
                index: RwLock::new(Arc::new(KeyIndex::new(principals))),
                loaded: Mutex::new(loaded),
            },
            decoy: decoy(),
        })
    }

    /// Whether there are no principals (development mode).
    pub fn is_development(&self) -> bool {
        matches!(self.mode, Mode::Development)
    }

    /// Principals currently loaded (0 in development mode).
    pub fn principal_count(&self) -> usize {
        match &self.mode {
            Mode::Development => 0,
            Mode::Principals { .. } => self.index().principals.principals.len(),
        }
    }

    /// The principals file in force (empty in development mode).
    pub fn principals(&self) -> Arc<Principals> {
        Arc::clone(&self.index().principals)
    }

    /// The append rules in force (none in development mode).
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.index().policy)
    }

    /// The principals file, or `None` in development mode.
    pub fn path(&self) -> Option<&Path> {
        match &self.mode {
            Mode::Development => None,
            Mode::Principals { path, .. } => Some(path),
        }
    }

    fn index(&self) -> Arc<KeyIndex> {
        match &self.mode {
            Mode::Development => Arc::new(KeyIndex::default()),
            Mode::Principals { index, .. } => match index.read() {
                Ok(index) => Arc::clone(&index),
                Err(poisoned) => Arc::clone(&poisoned.into_inner()),
            },
        }
    }

    fn swap(&self, principals: Principals) -> Arc<Principals> {
        let Mode::Principals { index, .. } = &self.mode else {
            return Arc::new(principals);
        };
        let fresh = Arc::new(KeyIndex::new(principals));
        let previous = match index.write() {
            Ok(mut index) => std::mem::replace(&mut *index, fresh),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), fresh),
        };
        Arc::clone(&previous.principals)
    }

    /// Puts `principals`, just written to the file by the admin service,
    /// in force at once, and marks the file as loaded so the reload poll
    /// does not take the admin's own write for an outside edit.
    pub fn install(&self, principals: Principals) -> Result<(), AuthError> {
        let Mode::Principals { path, loaded, .. } = &self.mode else {
            return Ok(());
        };
        let mut loaded = loaded.lock().map_err(|_| AuthError::File {
            path: path.clone(),
            reason: "a previous reload panicked".to_string(),
        })?;
        *loaded = stamp(path).ok();
        self.swap(principals);
        Ok(())
    }

    /// Re-reads the principals file if it changed since it was loaded.
    /// Returns the file before and after when it did. A file that cannot be
    /// read or parsed leaves the loaded principals in place (and is
    /// reported as the error): a broken edit never opens the server up, and
    /// never locks everyone out of a running one.
    pub fn reload_if_changed(&self) -> Result<Option<Reloaded>, AuthError> {
        let Mode::Principals { path, loaded, .. } = &self.mode else {
            return Ok(None);
        };
        let current = stamp(path).map_err(|e| AuthError::File {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut loaded = loaded.lock().map_err(|_| AuthError::File {
            path: path.clone(),
            reason: "a previous reload panicked".to_string(),
        })?;
        if *loaded == Some(current) {
            return Ok(None);
        }
        // Mark it seen first: a broken file is reported once, not every poll.
        *loaded = Some(current);
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::File {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let principals = Principals::parse(&text, path)?;
        let current = Arc::new(principals.clone());
        let previous = self.swap(principals);
        Ok(Some(Reloaded {
            previous,
            current,
            digest: blake3::hash(text.as_bytes()),
        }))
    }

    /// The caller presenting `headers` (an API key), or `UNAUTHENTICATED`.
    pub fn authenticate(&self, headers: &http::HeaderMap, method: &str) -> Result<Caller, Status> {
        self.authenticate_with_cert(headers, None, method)
    }

    /// The caller presenting `headers` and, on a mutual TLS connection,
    /// `client_cert`: the DER of the certificate the handshake verified
    /// against the client CA. See the module docs for the order.
    pub fn authenticate_with_cert(
        &self,
        headers: &http::HeaderMap,
        client_cert: Option<&[u8]>,
        method: &str,
    ) -> Result<Caller, Status> {
        if self.is_development() {
            return Ok(Caller::development());
        }
        let index = self.index();
        let header = headers.get(http::header::AUTHORIZATION);
        match (header, client_cert) {
            (None, None) => {
                tracing::info!(method, "authentication failed: no API key and no client certificate");
                Err(Status::unauthenticated(MISSING))
            }
            (Some(value), None) => self.by_key(&index, value.as_bytes(), method),
            (None, Some(der)) => by_cert(&index, der, method),
            (Some(value), Some(der)) => {
                let by_key = self.by_key(&index, value.as_bytes(), method)?;
                let by_cert = by_cert(&index, der, method)?;
                if by_key.name() == by_cert.name() {
                    Ok(by_key)
                } else {
                    tracing::info!(
                        method,
                        key_principal = by_key.name(),
                        cert_principal = by_cert.name(),
                        "authentication failed: API key and client certificate name different principals"
                    );
                    Err(Status::unauthenticated(MISMATCH))
                }
            }
        }
    }

    /// The caller whose key is the `authorization` header `value`.
    fn by_key(&self, index: &KeyIndex, value: &[u8], method: &str) -> Result<Caller, Status> {
        let Some(presented) = parse_bearer(value) else {
            tracing::info!(method, "authentication failed: malformed API key");
            return Err(Status::unauthenticated(INVALID));
        };
        let found = index.keys.get(&presented.id);
        let entry = found.map_or(&self.decoy, |(_, entry)| entry);
        let verified = entry.verify(&presented.secret);
        let key_id = presented.id.as_str();
        let caller = match found {
            Some((caller, _)) if verified => caller,
            _ => {
                tracing::info!(
                    method,
                    key_id,
                    known_id = found.is_some(),
                    "authentication failed: invalid API key"
                );
                return Err(Status::unauthenticated(INVALID));
            }
        };
        match entry.state_at(Utc::now()) {
            KeyState::Valid => Ok(caller.clone()),
            KeyState::Expired => {
                tracing::info!(
                    method,
                    key_id,
                    principal = caller.name(),
                    "authentication failed: API key expired"
                );
                Err(Status::unauthenticated("API key expired"))
            }
            KeyState::Revoked => {
                tracing::info!(
                    method,
                    key_id,
                    principal = caller.name(),
                    "authentication failed: API key revoked"
                );
                Err(Status::unauthenticated("API key revoked"))
            }
        }
    }
}

/// The caller whose client certificate (DER, already verified against the
/// client CA by the TLS handshake) is `der`. A certificate is public, so
/// there is no secret to keep from timing and the failure can be precise.
fn by_cert(index: &KeyIndex, der: &[u8], method: &str) -> Result<Caller, Status> {
    let sha256 = CertFingerprint::of_der(der);
    let cert_sha256 = tracing::field::display(sha256);
    match index.certs.get(&sha256) {
        None => {
            tracing::info!(
                method,
                cert_sha256,
                "authentication failed: client certificate not bound to a principal"
            );
            Err(Status::unauthenticated(UNBOUND_CERT))
        }
        Some((caller, entry)) if entry.is_revoked_at(Utc::now()) => {
            tracing::info!(
                method,
                cert_sha256,
                principal = caller.name(),
                "authentication failed: client certificate revoked"
            );
            Err(Status::unauthenticated(REVOKED_CERT))
        }
        Some((caller, _)) => Ok(caller.clone()),
    }
}

/// The client's certificate (DER) of the connection `extensions` came on:
/// present only over TLS with `--tls-client-ca`, when the client sent one
/// (the handshake has verified it).
fn client_cert(extensions: &http::Extensions) -> Option<Arc<Vec<rustls_pki_types::CertificateDer<'static>>>> {
    extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(TlsConnectInfo::peer_certs)
        .filter(|certs| !certs.is_empty())
}

/// Tower layer installing [`Authenticate`] in front of every service.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    /// A layer authenticating with `auth`.
    pub fn new(auth: Arc<Authenticator>) -> AuthLayer {
        AuthLayer { auth }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Authenticate<S> {
        Authenticate {
            inner,
            auth: Arc::clone(&self.auth),
        }
    }
}

/// See the module docs.
#[derive(Clone, Debug)]
pub struct Authenticate<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

impl<S, ReqBody> tower::Service<http::Request<ReqBody>> for Authenticate<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        if OPEN_PREFIXES.iter().any(|p| path.starts_with(p)) {
            return Box::pin(self.inner.call(request));
        }
        let chain = client_cert(request.extensions());
        let der = chain.as_ref().and_then(|certs| certs.first()).map(|cert| cert.as_ref());
        match self.auth.authenticate_with_cert(request.headers(), der, path) {
            Ok(caller) => {
                request.headers_mut().remove(http::header::AUTHORIZATION);
                request.extensions_mut().insert(caller);
                Box::pin(self.inner.call(request))
            }
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{CertFingerprint, Grant, Permission};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn headers(key: &str) -> Result<http::HeaderMap, http::header::InvalidHeaderValue> {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, format!("Bearer {key}").parse()?);
        Ok(headers)
    }

    fn code(result: Result<Caller, Status>) -> tonic::Code {
        result.err().map_or(tonic::Code::Ok, |s| s.code())
    }

    #[test]
    fn keys_authenticate_their_principal_until_revoked() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("principals.toml");
        let mut principals = Principals::default();
        principals.add_principal("probe", vec![Grant::parse("ops-hub:append")?])?;
        let now = Utc::now();
        let key = principals.add_key("probe", now, None)?;
        let expired = principals.add_key("probe", now, Some(now))?;
        principals.save(&path)?;
        let auth = Authenticator::from_file(&path)?;
        assert!(!auth.is_development());
        assert_eq!(auth.principal_count(), 1);

        let caller = auth.authenticate(&headers(key.expose())?, "/m")?;
        assert_eq!(caller.name(), "probe");
        assert!(caller.may(Permission::Append, "ops-hub"));

        let status = |h: &http::HeaderMap| auth.authenticate(h, "/m").err().map(|s| s.message().to_string());
        assert_eq!(status(&http::HeaderMap::new()).as_deref(), Some(MISSING));
        assert_eq!(status(&headers("lk_nonsense")?).as_deref(), Some(INVALID));
        let text = key.expose();
        let last = if text.ends_with('0') { '1' } else { '0' };
        let wrong_secret = format!("{}{last}", &text[..text.len() - 1]);
        assert_eq!(status(&headers(&wrong_secret)?).as_deref(), Some(INVALID));
        let unknown_id = format!("lk_0000000000000000{}", &key.expose()[19..]);
        assert_eq!(status(&headers(&unknown_id)?).as_deref(), Some(INVALID));
        assert_eq!(status(&headers(expired.expose())?).as_deref(), Some("API key expired"));

        // Revoked in the file: the next reload refuses the key.
        let mut edited = Principals::load(&path)?;
        edited.revoke_key(&key.entry().id, Utc::now())?;
        edited.save(&path)?;
        assert!(auth.reload_if_changed()?.is_some());
        assert!(auth.reload_if_changed()?.is_none());
        assert_eq!(status(&headers(key.expose())?).as_deref(), Some("API key revoked"));
        assert_eq!(
            code(auth.authenticate(&headers(key.expose())?, "/m")),
            tonic::Code::Unauthenticated
        );
        Ok(())
    }

    #[test]
    fn a_certificate_authenticates_its_principal_and_must_agree_with_a_key() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("principals.toml");
        let mut principals = Principals::default();
        principals.add_principal("probe", vec![Grant::parse("ops-hub:append")?])?;
        principals.add_principal("auditor", vec![Grant::parse("*:read")?])?;
        let now = Utc::now();
        // The layer sees DER bytes the handshake verified; any bytes will
        // do here, since only their SHA-256 is looked up.
        let (probe_cert, auditor_cert, unbound_cert) =
            (b"probe cert".as_slice(), b"auditor cert".as_slice(), b"x".as_slice());
        principals.add_cert("probe", CertFingerprint::of_der(probe_cert), now)?;
        principals.add_cert("auditor", CertFingerprint::of_der(auditor_cert), now)?;
        let probe_key = principals.add_key("probe", now, None)?;
        let auditor_key = principals.add_key("auditor", now, None)?;
        principals.save(&path)?;
        let auth = Authenticator::from_file(&path)?;
        let none = http::HeaderMap::new();
        let call = |h: &http::HeaderMap, cert: Option<&[u8]>| auth.authenticate_with_cert(h, cert, "/m");
        let message = |result: Result<Caller, Status>| result.err().map(|s| s.message().to_string());

        let caller = call(&none, Some(probe_cert))?;
        assert_eq!(caller.name(), "probe");
        assert!(caller.may(Permission::Append, "ops-hub") && !caller.may(Permission::Read, "ops-hub"));
        assert_eq!(message(call(&none, Some(unbound_cert))).as_deref(), Some(UNBOUND_CERT));
        assert_eq!(message(call(&none, None)).as_deref(), Some(MISSING));
        // Both: checked both, and they must agree.
        assert_eq!(call(&headers(probe_key.expose())?, Some(probe_cert))?.name(), "probe");
        assert_eq!(call(&headers(auditor_key.expose())?, None)?.name(), "auditor");
        assert_eq!(
            message(call(&headers(auditor_key.expose())?, Some(probe_cert))).as_deref(),
            Some(MISMATCH)
        );
        assert_eq!(
            message(call(&headers(probe_key.expose())?, Some(unbound_cert))).as_deref(),
            Some(UNBOUND_CERT)
        );
        // A bad key is not rescued by a good certificate.
        assert_eq!(
            message(call(&headers("lk_nonsense")?, Some(probe_cert))).as_deref(),
            Some(INVALID)
        );

        let mut edited = Principals::load(&path)?;
        edited.revoke_cert(CertFingerprint::of_der(probe_cert), Utc::now())?;
        edited.save(&path)?;
        assert!(auth.reload_if_changed()?.is_some());
        assert_eq!(message(call(&none, Some(probe_cert))).as_deref(), Some(REVOKED_CERT));
        assert_eq!(
            message(call(&headers(probe_key.expose())?, Some(probe_cert))).as_deref(),
            Some(REVOKED_CERT)
        );
        assert_eq!(call(&headers(probe_key.expose())?, None)?.name(), "probe");
        assert_eq!(call(&none, Some(auditor_cert))?.name(), "auditor");

        // Development mode: certificates change nothing.
        let development = Authenticator::development().authenticate_with_cert(&none, Some(unbound_cert), "/m")?;
        assert_eq!(development.name(), "development");
        Ok(())
    }

    #[test]
    fn a_broken_file_keeps_the_loaded_principals() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("principals.toml");
        let mut principals = Principals::default();
        principals.add_principal("probe", vec![Grant::parse("ops-hub:append")?])?;
        let key = principals.add_key("probe", Utc::now(), None)?;
        principals.save(&path)?;
        let auth = Authenticator::from_file(&path)?;
        std::fs::write(&path, "[[principal]]\nname = ")?;
        assert!(matches!(auth.reload_if_changed(), Err(AuthError::File { .. })));
        assert_eq!(code(auth.authenticate(&headers(key.expose())?, "/m")), tonic::Code::Ok);
        // Reported once, not on every poll.
        assert!(auth.reload_if_changed()?.is_none());
        Ok(())
    }

    #[test]
    fn development_mode_lets_everyone_in() {
        let auth = Authenticator::development();
        assert!(auth.is_development());
        let caller = auth.authenticate(&http::HeaderMap::new(), "/m");
        assert_eq!(
            caller.map(|c| c.name().to_string()).ok().as_deref(),
            Some("development")
        );
    }
}
