//! Authentication and authorization.
//!
//! *Who is calling* is settled once per call, before any handler runs, by
//! the tower layer in [`layer`]: the `authorization: Bearer <key>` metadata
//! names an API key of a principal (see [`key`] for the key format and how
//! it is stored), or, with mutual TLS, the client certificate the handshake
//! verified is bound to one by its fingerprint ([`cert`]). The layer puts
//! the principal's [`Caller`] into the request's extensions and removes the
//! header, so no handler (and no log line) ever holds a key. Health and
//! reflection are not authenticated.
//!
//! *What it may touch* is checked by each handler through [`Caller`]:
//! grants of `read`, `append` and `admin` per **namespace**, the part of a
//! stream name before its first `/` (`ops-hub/probe` is in `ops-hub`; a
//! stream without `/` is in the default namespace `""`). `admin` implies
//! `read` and `append`; a grant on `*` covers every namespace, with one
//! exception: appending to a system namespace ([`SYSTEM_NAMESPACES`]: the
//! key rotations in `ledger/keys`, the metrics alerts in `alert/...`, which
//! the ledger writes itself) needs `admin` there, so a producer holding
//! `*:append` cannot forge an alert.
//!
//! What each RPC needs (the authorization matrix test in
//! `tests/tests/auth.rs` pins every cell):
//!
//! | RPC | needs |
//! |---|---|
//! | `Append`, `AppendStream` | `append` on the namespace of every event |
//! | `Read`, `Subscribe` of a stream (or a prefix with `/`) | `read` on its namespace |
//! | `Read` by seq, `Subscribe` unfiltered or by a prefix without `/` | `read` somewhere; only readable records are delivered |
//! | `GetRecord` | `read` on the record's namespace (by event id, a record the caller may not read is `NOT_FOUND`, like a missing one) |
//! | `GetInclusionProof` | `read` or `append` on the record's namespace |
//! | `GetCheckpoint`, `GetConsistencyProof`, `GetLedgerInfo` | any grant |
//! | `Projections.GetStatus`, `ListFaults`, `Query` | `read` on `*` |
//! | `Projections.Replay` | `admin` on `*` |
//! | `Bundles.Create` | `read` on the namespace of every selected record |
//! | `Bundles.Get`, `List` | `read` somewhere; a bundle holding records the caller may not read is `NOT_FOUND` / not listed |
//!
//! Why these:
//! - Checkpoints, consistency proofs and the ledger info reveal the log's
//!   size and root, which every appender learns anyway (receipts carry the
//!   global seq, `include_checkpoint` returns the checkpoint): hiding them
//!   from append-only producers would protect nothing.
//! - An inclusion proof is hashes only; a producer holding `append` needs it
//!   to prove its own evidence is in the log.
//! - The projections fold records of every namespace into one state (a task
//!   is folded from `task.*` events in whatever stream they are): no row
//!   says which namespaces it came from, so no per-namespace filter could
//!   be exact. They need `read` everywhere.
//! - A bundle is evidence of completeness for its selector: filtering out
//!   records the caller may not read would make a bundle that silently
//!   claims less than it says, so Create refuses instead.
//!
//! Seqs are global: a caller reading only its namespaces sees gaps in the
//! seqs it receives, which tell it that other records exist in between (the
//! checkpoint tells it the total anyway). Nothing else of them is sent: no
//! stream name, type, id or payload, and no message at all for a record it
//! may not read.
//!
//! `UNAUTHENTICATED` means no, a malformed, an unknown, an expired or a
//! revoked key, a client certificate bound to no principal or revoked, or a
//! key and a certificate naming different principals; `PERMISSION_DENIED`
//! an authenticated caller without the grant, naming the principal, the
//! permission and the namespace the caller asked for.
//! Namespaces are checked from the request before anything is looked up,
//! so neither code says whether a namespace or stream exists.
//!
//! Without principals, `ledgerd` runs in development mode: every caller is
//! [`Caller::development`], allowed everything, and the server refuses to
//! listen on anything but loopback ([`check_listen`]).

pub mod cert;
pub mod key;
pub mod layer;
pub mod namespace;
pub mod policy;
pub mod principals;
pub mod producer;

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tonic::Status;

pub use cert::{CertEntry, CertFingerprint};
pub use key::{KeyEntry, NewKey};
pub use layer::{AuthLayer, Authenticator, Reloaded};
pub use namespace::{NamespacePolicy, TypeDeclaration};
pub use policy::{Policy, PolicyKeys};
pub use principals::{Principal, Principals};

/// Namespaces the ledger writes itself: `ledger` (key rotation records,
/// `ledger_verify::rotation::KEYS_STREAM`) and `alert` (the metrics
/// projection's alerts, `ALERT_STREAM_PREFIX`). Reading them needs a grant
/// naming them or `*`; appending needs `admin`.
pub const SYSTEM_NAMESPACES: [&str; 2] = ["ledger", "alert"];

/// The namespace of every namespace in a grant.
pub const EVERY_NAMESPACE: &str = "*";

/// The name development-mode callers carry in logs.
pub const DEVELOPMENT_PRINCIPAL: &str = "development";

/// Why principals or keys could not be loaded, parsed or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A grant is not `namespace:permission[,permission...]`.
    #[error("grant {grant:?}: {reason}")]
    BadGrant {
        /// The grant as written.
        grant: String,
        /// Why.
        reason: String,
    },
    /// A principal name is unusable.
    #[error("principal name {name:?}: {reason}")]
    BadName {
        /// The name as written.
        name: String,
        /// Why.
        reason: String,
    },
    /// The principals file could not be read, parsed or written.
    #[error("principals file {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A principal of that name already exists.
    #[error("principal {0:?} already exists")]
    PrincipalExists(String),
    /// No principal of that name.
    #[error("no principal named {0:?}")]
    NoSuchPrincipal(String),
    /// No key with that id.
    #[error("no API key with id {0:?}")]
    NoSuchKey(String),
    /// No producer key with that id.
    #[error("no producer key with id {0:?}")]
    NoSuchProducerKey(String),
    /// A producer key cannot be registered.
    #[error("{0}")]
    BadProducerKey(String),
    /// A namespace policy is unusable.
    #[error("{0}")]
    BadNamespace(String),
    /// A client certificate, or its fingerprint, is unusable.
    #[error("client certificate: {0}")]
    BadCert(String),
    /// The certificate is already bound (to this or another principal).
    #[error("client certificate {sha256} is already bound to principal {principal:?}")]
    CertExists {
        /// Its fingerprint.
        sha256: CertFingerprint,
        /// The principal it is bound to.
        principal: String,
    },
    /// No certificate with that fingerprint is bound to anyone.
    #[error("no client certificate with SHA-256 fingerprint {0}")]
    NoSuchCert(CertFingerprint),
    /// The system random number generator failed.
    #[error("random number generator: {0}")]
    Random(String),
}

/// What a caller may do to a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// Read records (and proofs, bundles of them).
    Read,
    /// Append events.
    Append,
    /// Everything, including appending to system namespaces and
    /// server-wide operations (projection replay) when granted on `*`.
    Admin,
}

impl Permission {
    /// The name used in grants: `read`, `append`, `admin`.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Append => "append",
            Permission::Admin => "admin",
        }
    }

    /// The permission of a name.
    pub fn from_name(name: &str) -> Option<Permission> {
        match name {
            "read" => Some(Permission::Read),
            "append" => Some(Permission::Append),
            "admin" => Some(Permission::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Permissions on one namespace (or on `*`), written
/// `namespace:permission[,permission...]`: `ops-hub:read,append`,
/// `*:admin`, `:read` (the default namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// A namespace, or [`EVERY_NAMESPACE`].
    pub namespace: String,
    /// What is granted there.
    pub permissions: BTreeSet<Permission>,
}

impl Grant {
    /// Parses `namespace:permission[,permission...]`.
    pub fn parse(text: &str) -> Result<Grant, AuthError> {
        let bad = |reason: &str| AuthError::BadGrant {
            grant: text.to_string(),
            reason: reason.to_string(),
        };
        // Permissions never contain ':', namespaces might.
        let (namespace, permissions) = text
            .rsplit_once(':')
            .ok_or_else(|| bad("expected namespace:permissions, e.g. ops-hub:read,append or *:admin"))?;
        if namespace.contains('/') {
            return Err(bad(
                "a namespace is the part of a stream name before its first '/', so it has no '/'",
            ));
        }
        if namespace.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("the namespace contains whitespace or control characters"));
        }
        let mut set = BTreeSet::new();
        for name in permissions.split(',') {
            let permission = Permission::from_name(name.trim())
                .ok_or_else(|| bad(&format!("{:?} is not read, append or admin", name.trim())))?;
            set.insert(permission);
        }
        Ok(Grant {
            namespace: namespace.to_string(),
            permissions: set,
        })
    }

    /// Whether this grant allows `permission` on `namespace`.
    fn covers(&self, permission: Permission, namespace: &str) -> bool {
        let admin = self.permissions.contains(&Permission::Admin);
        if !admin && !self.permissions.contains(&permission) {
            return false;
        }
        if self.namespace == namespace {
            return true;
        }
        if self.namespace != EVERY_NAMESPACE {
            return false;
        }
        // `*:append` does not reach the namespaces the ledger writes itself.
        admin || permission != Permission::Append || !SYSTEM_NAMESPACES.contains(&namespace)
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.permissions.iter().map(|p| p.name()).collect();
        write!(f, "{}:{}", self.namespace, names.join(","))
    }
}

/// One rule for namespaces everywhere (grants and secret-scan policy).
pub(crate) use ledger_core::namespace_of;

/// An authenticated caller: a principal and its grants, or the development
/// caller (no principals configured) that may do everything.
#[derive(Clone)]
pub struct Caller(Arc<CallerInner>);

struct CallerInner {
    name: String,
    grants: Vec<Grant>,
    development: bool,
    limits: crate::quota::LimitOverrides,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("name", &self.0.name)
            .field("grants", &self.0.grants)
            .field("development", &self.0.development)
            .finish()
    }
}

impl Caller {
    /// The caller of a server without principals: allowed everything.
    pub fn development() -> Caller {
        Caller(Arc::new(CallerInner {
            name: DEVELOPMENT_PRINCIPAL.to_string(),
            grants: Vec::new(),
            development: true,
            limits: crate::quota::LimitOverrides::default(),
        }))
    }

    /// A principal with its grants.
    pub fn principal(name: impl Into<String>, grants: Vec<Grant>) -> Caller {
        Caller(Arc::new(CallerInner {
            name: name.into(),
            grants,
            development: false,
            limits: crate::quota::LimitOverrides::default(),
        }))
    }

    /// A principal with its grants and its overrides of the server-wide
    /// abuse limits (`crate::quota`), carried by the caller so that an
    /// edited principals file takes effect with its next reload.
    pub fn principal_with_limits(
        name: impl Into<String>,
        grants: Vec<Grant>,
        limits: crate::quota::LimitOverrides,
    ) -> Caller {
        Caller(Arc::new(CallerInner {
            name: name.into(),
            grants,
            development: false,
            limits,
        }))
    }

    /// The caller's overrides of the server-wide abuse limits.
    pub fn limit_overrides(&self) -> crate::quota::LimitOverrides {
        self.0.limits
    }

    /// The caller the auth layer attached to `request`. A request without
    /// one never went through the layer: refused, never allowed.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("the request was not authenticated"))
    }

    /// The principal's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Whether this is the development caller (no principals configured).
    pub fn is_development(&self) -> bool {
        self.0.development
    }

    /// Whether `permission` is granted on `namespace`.
    pub fn may(&self, permission: Permission, namespace: &str) -> bool {
        self.0.development || self.0.grants.iter().any(|g| g.covers(permission, namespace))
    }

    /// Whether `permission` is granted on the namespace of `stream`.
    pub fn may_stream(&self, permission: Permission, stream: &str) -> bool {
        self.may(permission, namespace_of(stream))
    }

    /// Whether the caller may read the records of `stream`.
    pub fn may_read_stream(&self, stream: &str) -> bool {
        self.may_stream(Permission::Read, stream)
    }

    /// `PERMISSION_DENIED` unless `permission` is granted on the namespace
    /// of `stream`; `field` names the request field holding the stream.
    pub fn require_stream(&self, permission: Permission, field: &str, stream: &str) -> Result<(), Status> {
        let namespace = namespace_of(stream);
        if self.may(permission, namespace) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{field}: principal {:?} lacks {permission} on namespace {namespace:?}",
                self.name()
            )))
        }
    }

    /// Whether `permission` is granted on every namespace.
    pub fn may_everywhere(&self, permission: Permission) -> bool {
        self.may(permission, EVERY_NAMESPACE)
    }

    /// `PERMISSION_DENIED` unless `permission` is granted on `*`; for calls
    /// that answer from state folded from every namespace.
    pub fn require_everywhere(&self, permission: Permission) -> Result<(), Status> {
        if self.may_everywhere(permission) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "principal {:?} lacks {permission} on every namespace (\"*\"), which this call needs: \
                 it answers from state folded from all of them",
                self.name()
            )))
        }
    }

    /// Whether the caller may read every one of `namespaces`; `None`
    /// (namespaces unknown) needs `read` on `*`.
    pub fn may_read_all(&self, namespaces: Option<&[String]>) -> bool {
        match namespaces {
            Some(namespaces) => namespaces.iter().all(|ns| self.may(Permission::Read, ns)),
            None => self.may_everywhere(Permission::Read),
        }
    }

    /// Whether the caller may read some namespace.
    pub fn reads_anything(&self) -> bool {
        self.0.development
            || self
                .0
                .grants
                .iter()
                .any(|g| g.permissions.contains(&Permission::Read) || g.permissions.contains(&Permission::Admin))
    }

    /// `PERMISSION_DENIED` unless the caller may read some namespace; for
    /// calls whose answer is filtered to what it may read.
    pub fn require_some_read(&self) -> Result<(), Status> {
        if self.reads_anything() {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "principal {:?} lacks read on any namespace",
                self.name()
            )))
        }
    }

    /// `PERMISSION_DENIED` unless the caller holds some grant; for calls
    /// about the whole log (its size, root and key), which every producer
    /// learns from its receipts anyway.
    pub fn require_some_grant(&self) -> Result<(), Status> {
        if self.0.development || self.0.grants.iter().any(|g| !g.permissions.is_empty()) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "principal {:?} holds no grant",
                self.name()
            )))
        }
    }
}

/// Why `ledgerd` refuses to listen on an address.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to listen on {addr} without authentication: no principals are configured, and development \
     mode only binds to loopback. Create a principal (`ledgerd auth add-principal --data DIR --name NAME \
     --grant NAMESPACE:PERMISSIONS`, or set `--principals FILE`), or listen on 127.0.0.1 or [::1]"
)]
pub struct InsecureListen {
    /// The address.
    pub addr: SocketAddr,
}

/// Development mode (no principals) binds to loopback only.
pub fn check_listen(addr: SocketAddr, development: bool) -> Result<(), InsecureListen> {
    if development && !addr.ip().is_loopback() {
        return Err(InsecureListen { addr });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(grants: &[&str]) -> Result<Caller, AuthError> {
        let grants = grants.iter().map(|g| Grant::parse(g)).collect::<Result<Vec<_>, _>>()?;
        Ok(Caller::principal("p", grants))
    }

    #[test]
    fn namespaces_are_the_part_before_the_first_slash() {
        assert_eq!(namespace_of("ops-hub/probe/eu"), "ops-hub");
        assert_eq!(namespace_of("ops-hub"), "");
        assert_eq!(namespace_of("/x"), "");
        assert_eq!(namespace_of(ledger_verify::rotation::KEYS_STREAM), "ledger");
        assert_eq!(
            namespace_of(ledger_core::projection::builtin::metrics::ALERT_STREAM_PREFIX),
            "alert"
        );
        assert!(SYSTEM_NAMESPACES.contains(&"ledger") && SYSTEM_NAMESPACES.contains(&"alert"));
    }

    #[test]
    fn grants_parse_and_print() -> Result<(), AuthError> {
        let g = Grant::parse("ops-hub:append,read")?;
        assert_eq!(g.namespace, "ops-hub");
        assert_eq!(g.to_string(), "ops-hub:read,append");
        assert_eq!(Grant::parse(":read")?.namespace, "");
        assert_eq!(Grant::parse("*:admin")?.to_string(), "*:admin");
        for bad in ["ops-hub", "ops-hub:write", "ops/hub:read", "ops hub:read", "ops-hub:"] {
            assert!(
                matches!(Grant::parse(bad), Err(AuthError::BadGrant { .. })),
                "{bad} parsed"
            );
        }
        Ok(())
    }

    #[test]
    fn permissions_follow_grants() -> Result<(), AuthError> {
        let reader = caller(&["ops-hub:read"])?;
        assert!(reader.may(Permission::Read, "ops-hub"));
        assert!(!reader.may(Permission::Append, "ops-hub"));
        assert!(!reader.may(Permission::Read, "ci"));
        assert!(!reader.may(Permission::Read, ""));
        assert!(reader.may_read_stream("ops-hub/probe"));
        assert!(!reader.may_read_stream("ops-hub"));
        assert!(!reader.may_everywhere(Permission::Read));
        assert!(reader.reads_anything());

        let admin = caller(&["ops-hub:admin"])?;
        assert!(admin.may(Permission::Read, "ops-hub") && admin.may(Permission::Append, "ops-hub"));
        assert!(!admin.may(Permission::Read, "ci"));

        let appender = caller(&["ops-hub:append"])?;
        assert!(!appender.reads_anything());
        assert!(appender.require_some_grant().is_ok());
        assert_eq!(
            appender.require_some_read().map_err(|s| s.code()),
            Err(tonic::Code::PermissionDenied)
        );
        assert_eq!(
            caller(&[])?.require_some_grant().map_err(|s| s.code()),
            Err(tonic::Code::PermissionDenied)
        );
        Ok(())
    }

    #[test]
    fn every_namespace_grants_reach_system_namespaces_for_reading_only() -> Result<(), AuthError> {
        let everything = caller(&["*:read,append"])?;
        assert!(everything.may(Permission::Read, "alert"));
        assert!(everything.may(Permission::Append, "ci"));
        assert!(everything.may(Permission::Append, ""));
        assert!(!everything.may(Permission::Append, "alert"));
        assert!(!everything.may(Permission::Append, "ledger"));
        assert!(everything.may_everywhere(Permission::Read));
        assert!(!everything.may_everywhere(Permission::Admin));

        let admin = caller(&["*:admin"])?;
        assert!(admin.may(Permission::Append, "ledger"));
        assert!(admin.may_everywhere(Permission::Admin));

        // A grant naming a system namespace is deliberate: it counts.
        assert!(caller(&["alert:read"])?.may(Permission::Read, "alert"));
        assert!(!caller(&["ops-hub:read"])?.may(Permission::Read, "alert"));
        Ok(())
    }

    #[test]
    fn denials_name_principal_permission_and_namespace() -> Result<(), AuthError> {
        let status = caller(&["ops-hub:read"])?
            .require_stream(Permission::Append, "events[2].stream", "ci/build")
            .err()
            .map(|s| (s.code(), s.message().to_string()));
        assert_eq!(
            status,
            Some((
                tonic::Code::PermissionDenied,
                "events[2].stream: principal \"p\" lacks append on namespace \"ci\"".to_string()
            ))
        );
        Ok(())
    }

    #[test]
    fn development_may_everything_and_binds_to_loopback_only() {
        let dev = Caller::development();
        assert!(dev.may(Permission::Append, "ledger") && dev.may_everywhere(Permission::Admin));
        let ok = |a: &str| a.parse().map(|a| check_listen(a, true).is_ok()).unwrap_or(false);
        assert!(ok("127.0.0.1:50051"));
        assert!(ok("[::1]:50051"));
        assert!(!ok("0.0.0.0:50051"));
        assert!(!ok("192.0.2.7:50051"));
        assert!(!ok("[::]:50051"));
        let public = "0.0.0.0:50051".parse().map(|a| check_listen(a, false).is_ok());
        assert_eq!(public, Ok(true));
        let message = "0.0.0.0:1"
            .parse()
            .ok()
            .and_then(|a| check_listen(a, true).err())
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.starts_with("refusing to listen on 0.0.0.0:1 without authentication"),
            "{message}"
        );
    }
}
