//! The principals file (`<data>/principals.toml` by default): who may call,
//! with which grants, keys and client certificates. Keys are stored as
//! salted hashes only ([`super::key`]); certificates by their SHA-256
//! fingerprint ([`super::cert`]).
//!
//! ```toml
//! [[principal]]
//! name = "ops-hub-probe"
//! grants = ["ops-hub:append", "ci:read"]
//!
//! [[principal.key]]
//! id = "9f2c4e1a7b3d5f60"
//! salt = "<32 hex digits>"
//! hash = "<64 hex digits>"
//! created_at = "2026-12-04T10:00:00Z"
//! expires_at = "2027-03-04T10:00:00Z"   # optional
//! revoked_at = "2026-12-05T08:00:00Z"   # optional: set by `ledgerd auth revoke-key`
//!
//! [[principal.cert]]                     # mutual TLS: a client certificate
//! sha256 = "<64 lower-case hex digits>"   # SHA-256 of its DER encoding
//! added_at = "2026-12-04T10:00:00Z"
//! revoked_at = "2026-12-05T08:00:00Z"   # optional: set by `ledgerd auth revoke-cert`
//!
//! [principal.limits]                     # optional: overrides the server-wide
//! events_per_sec = 5000                  # principal_* settings (0 = unlimited
//! bytes_per_sec = 10485760               # for the rates), see `crate::quota`
//! max_streams = 8
//! ```
//!
//! `ledgerd auth` writes it (to a temporary file, fsynced, renamed, mode
//! 0600); grants may be edited by hand. A running `ledgerd` reloads it when
//! it changes, so a revocation takes effect without a restart. Unknown
//! fields, duplicate names, duplicate key ids and a certificate bound twice
//! (to one principal or two) are refused.

use std::collections::HashSet;
use std::fs;
use std::io::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::cert::{CertEntry, CertFingerprint};
use super::key::{KeyEntry, NewKey, SALT_BYTES};
use super::namespace::{NamespacePolicy, NamespaceToml};
use super::producer::{ProducerKeyEntry, ProducerKeyToml, check_key_id};
use super::{AuthError, Grant};
use crate::quota::LimitOverrides;

/// Longest principal name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// The comment at the top of a written file.
const HEADER: &str = "\
# ledgerd principals: who may call, with which grants and API keys.
# Keys are stored only as salted BLAKE3 hashes; each key was shown once, when
# it was made. Grants are \"namespace:permissions\" (read, append, admin; \"*\"
# is every namespace) and may be edited by hand. Managed with `ledgerd auth`;
# a running ledgerd reloads this file when it changes.
";

/// A new version of the principals file, written and fsynced beside it
/// but not yet renamed over it (removed if dropped uncommitted).
#[derive(Debug)]
pub struct Staged {
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
    dir: std::path::PathBuf,
    digest: blake3::Hash,
    committed: bool,
}

impl Staged {
    /// BLAKE3 of the new file's bytes.
    pub fn digest(&self) -> blake3::Hash {
        self.digest
    }

    /// Puts the new file in place: renamed over the old one, the directory
    /// fsynced.
    pub fn commit(mut self) -> Result<(), AuthError> {
        let bad = |what: &str, e: std::io::Error| AuthError::File {
            path: self.path.clone(),
            reason: format!("{what}: {e}"),
        };
        fs::rename(&self.tmp, &self.path).map_err(|e| bad("renaming the temporary file", e))?;
        self.committed = true;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| bad("syncing its directory", e))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A principal: a name, its grants and its keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Unique name (appears in logs and `PERMISSION_DENIED` messages).
    pub name: String,
    /// What it may do.
    pub grants: Vec<Grant>,
    /// Its keys, revoked and expired ones included.
    pub keys: Vec<KeyEntry>,
    /// Its client certificates (mutual TLS), revoked ones included.
    pub certs: Vec<CertEntry>,
    /// Its overrides of the server-wide abuse limits.
    pub limits: LimitOverrides,
    /// The keys its events may be signed with, revoked ones included.
    pub producer_keys: Vec<ProducerKeyEntry>,
}

/// Every principal of a file, and the namespace policies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Principals {
    /// In file order.
    pub principals: Vec<Principal>,
    /// In file order, one per namespace at most.
    pub namespaces: Vec<NamespacePolicy>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    principal: Vec<PrincipalToml>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    namespace: Vec<NamespaceToml>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalToml {
    name: String,
    #[serde(default)]
    grants: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limits: Option<LimitsToml>,
    #[serde(default)]
    key: Vec<KeyToml>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    producer_key: Vec<ProducerKeyToml>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    cert: Vec<CertToml>,
}

/// `[principal.limits]`: absent in files written before limits existed.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsToml {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    events_per_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes_per_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_streams: Option<u32>,
}

impl LimitsToml {
    fn overrides(&self) -> Result<LimitOverrides, String> {
        if self.max_streams == Some(0) {
            return Err(
                "limits.max_streams: must be greater than 0 (to keep a principal from reading, remove its read grants)"
                    .to_string(),
            );
        }
        Ok(LimitOverrides {
            events_per_sec: self.events_per_sec,
            bytes_per_sec: self.bytes_per_sec,
            max_streams: self.max_streams,
        })
    }

    fn of(limits: &LimitOverrides) -> Option<LimitsToml> {
        (!limits.is_empty()).then_some(LimitsToml {
            events_per_sec: limits.events_per_sec,
            bytes_per_sec: limits.bytes_per_sec,
            max_streams: limits.max_streams,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyToml {
    id: String,
    salt: String,
    hash: String,
    created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
}

/// `[[principal.cert]]`: absent in files written before mutual TLS.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CertToml {
    sha256: String,
    added_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
}

impl CertToml {
    fn entry(&self) -> Result<CertEntry, String> {
        let sha256 = CertFingerprint::parse(&self.sha256).map_err(|e| format!("cert {e}"))?;
        let context = format!("cert {sha256}:");
        Ok(CertEntry {
            sha256,
            added_at: time(&self.added_at, &format!("{context} added_at"))?,
            revoked_at: self
                .revoked_at
                .as_deref()
                .map(|t| time(t, &format!("{context} revoked_at")))
                .transpose()?,
        })
    }

    fn of(entry: &CertEntry) -> CertToml {
        CertToml {
            sha256: entry.sha256.to_string(),
            added_at: rfc3339(entry.added_at),
            revoked_at: entry.revoked_at.map(rfc3339),
        }
    }
}

/// Checks a principal name: non-empty, bounded, printable.
pub fn check_name(name: &str) -> Result<(), AuthError> {
    let bad = |reason: &str| AuthError::BadName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(bad("must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(bad(&format!("longer than {MAX_NAME_BYTES} bytes")));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("whitespace and control characters are not allowed"));
    }
    Ok(())
}

pub(super) fn time(text: &str, what: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{what} {text:?} is not an RFC 3339 time: {e}"))
}

pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

impl KeyToml {
    fn entry(&self) -> Result<KeyEntry, String> {
        let mut id_bytes = [0u8; super::key::ID_BYTES];
        hex::decode_to_slice(&self.id, &mut id_bytes)
            .map_err(|_| format!("key id {:?}: expected {} hex digits", self.id, 2 * id_bytes.len()))?;
        if self.id != hex::encode(id_bytes) {
            return Err(format!("key id {:?}: hex digits must be lower case", self.id));
        }
        let mut salt = [0u8; SALT_BYTES];
        hex::decode_to_slice(&self.salt, &mut salt)
            .map_err(|_| format!("key {}: salt: expected {} hex digits", self.id, 2 * SALT_BYTES))?;
        let hash =
            blake3::Hash::from_hex(&self.hash).map_err(|_| format!("key {}: hash: expected 64 hex digits", self.id))?;
        let context = format!("key {}:", self.id);
        Ok(KeyEntry {
            id: self.id.clone(),
            salt,
            hash,
            created_at: time(&self.created_at, &format!("{context} created_at"))?,
            expires_at: self
                .expires_at
                .as_deref()
                .map(|t| time(t, &format!("{context} expires_at")))
                .transpose()?,
            revoked_at: self
                .revoked_at
                .as_deref()
                .map(|t| time(t, &format!("{context} revoked_at")))
                .transpose()?,
        })
    }

    fn of(entry: &KeyEntry) -> KeyToml {
        KeyToml {
            id: entry.id.clone(),
            salt: hex::encode(entry.salt),
            hash: entry.hash.to_hex().to_string(),
            created_at: rfc3339(entry.created_at),
            expires_at: entry.expires_at.map(rfc3339),
            revoked_at: entry.revoked_at.map(rfc3339),
        }
    }
}

impl Principals {
    /// Parses the text of a principals file (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Principals, AuthError> {
        let bad = |reason: String| AuthError::File {
            path: path.to_path_buf(),
            reason,
        };
        let file: FileToml = toml::from_str(text).map_err(|e| bad(e.to_string().trim_end().replace('\n', " ")))?;
        let mut names = HashSet::new();
        let mut ids = HashSet::new();
        let mut producer_ids = HashSet::new();
        let mut fingerprints = HashSet::new();
        let mut principals = Vec::with_capacity(file.principal.len());
        for p in file.principal {
            check_name(&p.name).map_err(|e| bad(e.to_string()))?;
            if !names.insert(p.name.clone()) {
                return Err(bad(format!("principal {:?} is defined twice", p.name)));
            }
            let grants = p
                .grants
                .iter()
                .map(|g| Grant::parse(g))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("principal {:?}: {e}", p.name)))?;
            let keys = p
                .key
                .iter()
                .map(KeyToml::entry)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("principal {:?}: {e}", p.name)))?;
            for key in &keys {
                if !ids.insert(key.id.clone()) {
                    return Err(bad(format!("key id {} appears twice", key.id)));
                }
            }
            let producer_keys = p
                .producer_key
                .iter()
                .map(ProducerKeyToml::entry)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("principal {:?}: {e}", p.name)))?;
            for key in &producer_keys {
                if !producer_ids.insert(key.id.clone()) {
                    return Err(bad(format!("producer key id {:?} appears twice", key.id)));
                }
            }
            let certs = p
                .cert
                .iter()
                .map(CertToml::entry)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("principal {:?}: {e}", p.name)))?;
            for cert in &certs {
                if !fingerprints.insert(cert.sha256) {
                    return Err(bad(format!("client certificate {} is bound twice", cert.sha256)));
                }
            }
            let limits = match &p.limits {
                Some(limits) => limits
                    .overrides()
                    .map_err(|e| bad(format!("principal {:?}: {e}", p.name)))?,
                None => LimitOverrides::default(),
            };
            principals.push(Principal {
                name: p.name,
                grants,
                keys,
                certs,
                limits,
                producer_keys,
            });
        }
        let mut namespaces = Vec::with_capacity(file.namespace.len());
        for n in &file.namespace {
            let policy = n.policy().map_err(bad)?;
            if namespaces.iter().any(|p: &NamespacePolicy| p.name == policy.name) {
                return Err(bad(format!("namespace {:?} is defined twice", policy.name)));
            }
            namespaces.push(policy);
        }
        Ok(Principals { principals, namespaces })
    }

    /// Reads and parses a principals file.
    pub fn load(path: &Path) -> Result<Principals, AuthError> {
        let text = fs::read_to_string(path).map_err(|e| AuthError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Principals::parse(&text, path)
    }

    /// Reads a principals file, or an empty set if there is none yet.
    pub fn load_or_empty(path: &Path) -> Result<Principals, AuthError> {
        if path.exists() {
            Principals::load(path)
        } else {
            Ok(Principals::default())
        }
    }

    /// The file's text.
    pub fn to_toml(&self) -> Result<String, AuthError> {
        let file = FileToml {
            principal: self
                .principals
                .iter()
                .map(|p| PrincipalToml {
                    name: p.name.clone(),
                    grants: p.grants.iter().map(Grant::to_string).collect(),
                    limits: LimitsToml::of(&p.limits),
                    key: p.keys.iter().map(KeyToml::of).collect(),
                    producer_key: p.producer_keys.iter().map(ProducerKeyToml::of).collect(),
                    cert: p.certs.iter().map(CertToml::of).collect(),
                })
                .collect(),
            namespace: self.namespaces.iter().map(NamespaceToml::of).collect(),
        };
        let body = toml::to_string(&file).map_err(|e| AuthError::File {
            path: "principals.toml".into(),
            reason: e.to_string(),
        })?;
        Ok(format!("{HEADER}\n{body}"))
    }

    /// Writes the file durably: a temporary file (mode 0600) fsynced and
    /// renamed over `path`, then the directory fsynced. A running
    /// `ledgerd` sees either the old or the new file, never a partial one.
    pub fn save(&self, path: &Path) -> Result<(), AuthError> {
        self.stage(path)?.commit()
    }

    /// The first half of [`Principals::save`]: the new text written and
    /// fsynced beside `path`, not yet in force. The admin service records
    /// the change in the ledger between the halves; dropping the
    /// [`Staged`] file instead of committing it removes it.
    pub fn stage(&self, path: &Path) -> Result<Staged, AuthError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let text = self.to_toml()?;
        let bad = |what: &str, e: std::io::Error| AuthError::File {
            path: path.to_path_buf(),
            reason: format!("{what}: {e}"),
        };
        let dir = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) => dir.to_path_buf(),
            None => ".".into(),
        };
        fs::create_dir_all(&dir).map_err(|e| bad("creating its directory", e))?;
        let tmp = path.with_extension("toml.tmp");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| bad("creating the temporary file", e))?;
        let staged = Staged {
            tmp,
            path: path.to_path_buf(),
            dir,
            digest: blake3::hash(text.as_bytes()),
            committed: false,
        };
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| bad("writing the temporary file", e))?;
        Ok(staged)
    }

    /// Takes the lock every writer of the file at `path` holds while it
    /// reads, changes and writes it (`ledgerd auth`, the admin service of a
    /// running `ledgerd`), so two writers never lose each other's change.
    /// An advisory lock on `<path>.lock`, released when the handle drops.
    pub fn lock(path: &Path) -> Result<fs::File, AuthError> {
        let lock_path = path.with_extension("toml.lock");
        let bad = |what: &str, e: std::io::Error| AuthError::File {
            path: lock_path.clone(),
            reason: format!("{what}: {e}"),
        };
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| bad("creating its directory", e))?;
        }
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| bad("opening", e))?;
        file.lock().map_err(|e| bad("locking", e))?;
        Ok(file)
    }

    /// The principal called `name`.
    pub fn get(&self, name: &str) -> Option<&Principal> {
        self.principals.iter().find(|p| p.name == name)
    }

    /// Adds a principal without keys.
    pub fn add_principal(&mut self, name: &str, grants: Vec<Grant>) -> Result<(), AuthError> {
        check_name(name)?;
        if self.get(name).is_some() {
            return Err(AuthError::PrincipalExists(name.to_string()));
        }
        self.principals.push(Principal {
            name: name.to_string(),
            grants,
            keys: Vec::new(),
            certs: Vec::new(),
            limits: LimitOverrides::default(),
            producer_keys: Vec::new(),
        });
        Ok(())
    }

    /// Makes a key for principal `name`; the returned key is the only copy
    /// of its secret.
    pub fn add_key(
        &mut self,
        name: &str,
        now: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<NewKey, AuthError> {
        let principal = self
            .principals
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| AuthError::NoSuchPrincipal(name.to_string()))?;
        let key = NewKey::generate(now, expires_at)?;
        principal.keys.push(key.entry().clone());
        Ok(key)
    }

    /// Revokes the key with id `id` as of `now` (a key already revoked
    /// keeps its first revocation time); returns its principal's name.
    pub fn revoke_key(&mut self, id: &str, now: DateTime<Utc>) -> Result<String, AuthError> {
        for principal in &mut self.principals {
            if let Some(key) = principal.keys.iter_mut().find(|k| k.id == id) {
                key.revoked_at.get_or_insert(now);
                return Ok(principal.name.clone());
            }
        }
        Err(AuthError::NoSuchKey(id.to_string()))
    }

    /// Binds the client certificate with fingerprint `sha256` to principal
    /// `name`. A certificate names one principal, ever: one bound before,
    /// even revoked, is refused.
    pub fn add_cert(&mut self, name: &str, sha256: CertFingerprint, now: DateTime<Utc>) -> Result<(), AuthError> {
        if let Some(holder) = self
            .principals
            .iter()
            .find(|p| p.certs.iter().any(|c| c.sha256 == sha256))
        {
            return Err(AuthError::CertExists {
                sha256,
                principal: holder.name.clone(),
            });
        }
        let principal = self
            .principals
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| AuthError::NoSuchPrincipal(name.to_string()))?;
        principal.certs.push(CertEntry {
            sha256,
            added_at: now,
            revoked_at: None,
        });
        Ok(())
    }

    /// Revokes the client certificate with fingerprint `sha256` as of `now`
    /// (one already revoked keeps its first revocation time); returns its
    /// principal's name.
    pub fn revoke_cert(&mut self, sha256: CertFingerprint, now: DateTime<Utc>) -> Result<String, AuthError> {
        for principal in &mut self.principals {
            if let Some(cert) = principal.certs.iter_mut().find(|c| c.sha256 == sha256) {
                cert.revoked_at.get_or_insert(now);
                return Ok(principal.name.clone());
            }
        }
        Err(AuthError::NoSuchCert(sha256))
    }

    /// Revokes principal `name` as of `now`: every key, certificate and
    /// producer key it has (first revocation times kept) and its grants.
    pub fn revoke_principal(&mut self, name: &str, now: DateTime<Utc>) -> Result<(), AuthError> {
        let principal = self.principal_mut(name)?;
        principal.grants.clear();
        for key in &mut principal.keys {
            key.revoked_at.get_or_insert(now);
        }
        for cert in &mut principal.certs {
            cert.revoked_at.get_or_insert(now);
        }
        for key in &mut principal.producer_keys {
            key.revoked_at.get_or_insert(now);
        }
        Ok(())
    }

    /// Replaces the grants of principal `name`.
    pub fn set_grants(&mut self, name: &str, grants: Vec<Grant>) -> Result<(), AuthError> {
        self.principal_mut(name)?.grants = grants;
        Ok(())
    }

    /// Registers producer key `entry` for principal `name`; key ids are
    /// unique across principals.
    pub fn add_producer_key(&mut self, name: &str, entry: ProducerKeyEntry) -> Result<(), AuthError> {
        check_key_id(&entry.id).map_err(AuthError::BadProducerKey)?;
        if let Some((owner, _)) = self.producer_key(&entry.id) {
            return Err(AuthError::BadProducerKey(format!(
                "producer key id {:?} is already registered (to principal {owner:?})",
                entry.id
            )));
        }
        self.principal_mut(name)?.producer_keys.push(entry);
        Ok(())
    }

    /// Revokes producer key `id` as of `now` (keeping a first revocation
    /// time); returns its principal's name.
    pub fn revoke_producer_key(&mut self, id: &str, now: DateTime<Utc>) -> Result<String, AuthError> {
        for principal in &mut self.principals {
            if let Some(key) = principal.producer_keys.iter_mut().find(|k| k.id == id) {
                key.revoked_at.get_or_insert(now);
                return Ok(principal.name.clone());
            }
        }
        Err(AuthError::NoSuchProducerKey(id.to_string()))
    }

    /// The producer key `id` and the name of the principal it belongs to.
    pub fn producer_key(&self, id: &str) -> Option<(&str, &ProducerKeyEntry)> {
        self.principals.iter().find_map(|p| {
            p.producer_keys
                .iter()
                .find(|k| k.id == id)
                .map(|k| (p.name.as_str(), k))
        })
    }

    /// The policy of namespace `name`.
    pub fn namespace(&self, name: &str) -> Option<&NamespacePolicy> {
        self.namespaces.iter().find(|n| n.name == name)
    }

    /// The policy of namespace `name`, added (with no rules) if missing.
    pub fn namespace_mut(&mut self, name: &str) -> Result<&mut NamespacePolicy, AuthError> {
        super::namespace::check_namespace(name).map_err(AuthError::BadNamespace)?;
        let at = match self.namespaces.iter().position(|n| n.name == name) {
            Some(at) => at,
            None => {
                self.namespaces.push(NamespacePolicy {
                    name: name.to_string(),
                    require_signatures: false,
                    vocabulary_version: 0,
                    types: None,
                });
                self.namespaces.len() - 1
            }
        };
        Ok(&mut self.namespaces[at])
    }

    fn principal_mut(&mut self, name: &str) -> Result<&mut Principal, AuthError> {
        self.principals
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| AuthError::NoSuchPrincipal(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::key::parse_key;

    #[test]
    fn a_file_round_trips_and_keeps_no_secret() -> Result<(), AuthError> {
        let now = DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .map_err(|e| AuthError::Random(e.to_string()))?
            .with_timezone(&Utc);
        let mut principals = Principals::default();
        principals.add_principal("ops-hub-probe", vec![Grant::parse("ops-hub:append,read")?])?;
        principals.add_principal("auditor", vec![Grant::parse("*:read")?])?;
        principals.principals[0].limits = LimitOverrides {
            events_per_sec: Some(5000),
            bytes_per_sec: None,
            max_streams: Some(8),
        };
        let key = principals.add_key("ops-hub-probe", now, Some(now + chrono::Duration::days(90)))?;
        let second = principals.add_key("auditor", now, None)?;
        assert_eq!(principals.revoke_key(&second.entry().id, now)?, "auditor");

        let text = principals.to_toml()?;
        let secret = key.expose().rsplit('_').next().unwrap_or_default();
        assert!(!text.contains(secret), "the file holds a secret:\n{text}");
        assert!(text.contains("[[principal.key]]") && text.contains("expires_at = \"2027-03-04T10:00:00Z\""));
        let parsed = Principals::parse(&text, Path::new("p.toml"))?;
        assert_eq!(parsed, principals);
        let presented = parse_key(key.expose()).ok_or_else(|| AuthError::NoSuchKey(String::new()))?;
        let stored = &parsed
            .get("ops-hub-probe")
            .ok_or_else(|| AuthError::NoSuchPrincipal(String::new()))?
            .keys[0];
        assert!(stored.verify(&presented.secret));
        Ok(())
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let err = |text: &str| {
            Principals::parse(text, Path::new("p.toml"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let key = "id = \"00112233445566ff\"\nsalt = \"000102030405060708090a0b0c0d0e0f\"\nhash = \"af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262\"\ncreated_at = \"2026-12-04T10:00:00Z\"\n";
        assert!(err("[[principal]]\nname = \"a\"\ngrant = []\n").contains("unknown field `grant`"));
        assert!(err("[[principal]]\nname = \"a\"\n[[principal]]\nname = \"a\"\n").contains("defined twice"));
        assert!(
            err("[[principal]]\nname = \"a\"\n[principal.limits]\nevents = 5\n").contains("unknown field `events`")
        );
        assert!(
            err("[[principal]]\nname = \"a\"\n[principal.limits]\nevents_per_sec = -5\n").contains("events_per_sec")
        );
        assert!(
            err("[[principal]]\nname = \"a\"\n[principal.limits]\nmax_streams = 0\n")
                .contains("principal \"a\": limits.max_streams: must be greater than 0")
        );
        assert!(err("[[principal]]\nname = \"a b\"\n").contains("whitespace"));
        assert!(err("[[principal]]\nname = \"a\"\ngrants = [\"ops:write\"]\n").contains("\"write\" is not read"));
        assert!(
            err(&format!("[[principal]]\nname = \"a\"\n[[principal.key]]\n{key}\n[[principal]]\nname = \"b\"\n[[principal.key]]\n{key}"))
                .contains("appears twice")
        );
        assert!(
            err(&format!(
                "[[principal]]\nname = \"a\"\n[[principal.key]]\n{}",
                key.replace("ff\"", "FF\"")
            ))
            .contains("lower case")
        );
        assert!(
            err(&format!(
                "[[principal]]\nname = \"a\"\n[[principal.key]]\n{}",
                key.replace("2026-12-04T10:00:00Z", "yesterday")
            ))
            .contains("created_at \"yesterday\" is not an RFC 3339 time")
        );
        assert_eq!(
            Principals::parse("", Path::new("p.toml"))
                .map(|p| p.principals.len())
                .ok(),
            Some(0)
        );
    }

    #[test]
    fn edits_name_what_is_missing_or_taken() -> Result<(), AuthError> {
        let mut principals = Principals::default();
        principals.add_principal("a", Vec::new())?;
        assert!(matches!(
            principals.add_principal("a", Vec::new()),
            Err(AuthError::PrincipalExists(name)) if name == "a"
        ));
        assert!(matches!(
            principals.add_key("b", Utc::now(), None),
            Err(AuthError::NoSuchPrincipal(name)) if name == "b"
        ));
        assert!(matches!(
            principals.revoke_key("0011", Utc::now()),
            Err(AuthError::NoSuchKey(id)) if id == "0011"
        ));
        Ok(())
    }

    const CLIENT_SHA256: &str = "3da84bbcc52ce011a0162baf6e0b931c62b365d0b002b3e154aac7b8825daf01";
    const OTHER_SHA256: &str = "53f1331f411b6ac68f1a2858a10f4ece294dbe692de222836126471b5d27a45e";

    fn fingerprint(text: &str) -> Result<CertFingerprint, AuthError> {
        CertFingerprint::parse(text).map_err(AuthError::BadCert)
    }

    #[test]
    fn certificates_round_trip_and_bind_once() -> Result<(), AuthError> {
        let now = DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .map_err(|e| AuthError::Random(e.to_string()))?
            .with_timezone(&Utc);
        let mut principals = Principals::default();
        principals.add_principal("ops-hub-probe", vec![Grant::parse("ops-hub:append")?])?;
        principals.add_principal("auditor", vec![Grant::parse("*:read")?])?;
        let key = principals.add_key("auditor", now, None)?;
        let before = principals.to_toml()?;
        assert!(
            !before.contains("cert"),
            "a file without certificates changed:\n{before}"
        );

        principals.add_cert("ops-hub-probe", fingerprint(CLIENT_SHA256)?, now)?;
        principals.add_cert("auditor", fingerprint(OTHER_SHA256)?, now)?;
        let later = now + chrono::Duration::hours(1);
        assert_eq!(principals.revoke_cert(fingerprint(OTHER_SHA256)?, later)?, "auditor");
        // Revoking again keeps the first time.
        principals.revoke_cert(fingerprint(OTHER_SHA256)?, later + chrono::Duration::hours(1))?;
        let text = principals.to_toml()?;
        assert!(
            text.contains(&format!(
                "[[principal.cert]]\nsha256 = \"{CLIENT_SHA256}\"\nadded_at = \"2026-12-04T10:00:00Z\"\n"
            )),
            "{text}"
        );
        assert!(text.contains("revoked_at = \"2026-12-04T11:00:00Z\""), "{text}");
        let parsed = Principals::parse(&text, Path::new("p.toml"))?;
        assert_eq!(parsed, principals);
        assert_eq!(parsed.to_toml()?, text, "read then written is not the same file");
        assert_eq!(
            parsed.get("auditor").map(|p| p.keys[0].id.clone()),
            Some(key.entry().id.clone())
        );

        // Bound once, ever: not again, not elsewhere, not after revocation.
        for (name, sha256, holder) in [
            ("ops-hub-probe", CLIENT_SHA256, "ops-hub-probe"),
            ("auditor", CLIENT_SHA256, "ops-hub-probe"),
            ("ops-hub-probe", OTHER_SHA256, "auditor"),
        ] {
            let sha256 = fingerprint(sha256)?;
            assert!(matches!(
                principals.add_cert(name, sha256, now),
                Err(AuthError::CertExists { sha256: s, principal }) if s == sha256 && principal == holder
            ));
        }
        let unknown = fingerprint(&"ab".repeat(32))?;
        assert!(matches!(
            principals.revoke_cert(unknown, now),
            Err(AuthError::NoSuchCert(s)) if s == unknown
        ));
        assert!(matches!(
            principals.add_cert("nobody", unknown, now),
            Err(AuthError::NoSuchPrincipal(name)) if name == "nobody"
        ));
        Ok(())
    }

    #[test]
    fn bad_certificate_entries_are_refused_with_the_reason() {
        let err = |text: &str| {
            Principals::parse(text, Path::new("p.toml"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let cert =
            |sha256: &str| format!("[[principal.cert]]\nsha256 = \"{sha256}\"\nadded_at = \"2026-12-04T10:00:00Z\"\n");
        let twice = err(&format!(
            "[[principal]]\nname = \"a\"\n{}\n[[principal]]\nname = \"b\"\n{}",
            cert(CLIENT_SHA256),
            cert(CLIENT_SHA256)
        ));
        assert_eq!(
            twice,
            format!("principals file p.toml: client certificate {CLIENT_SHA256} is bound twice")
        );
        let same = err(&format!(
            "[[principal]]\nname = \"a\"\n{}{}",
            cert(CLIENT_SHA256),
            cert(CLIENT_SHA256)
        ));
        assert!(same.ends_with("is bound twice"), "{same}");
        let upper = err(&format!(
            "[[principal]]\nname = \"a\"\n{}",
            cert(&CLIENT_SHA256.to_uppercase())
        ));
        assert!(
            upper.contains("principal \"a\": cert sha256 \"3DA84BBC")
                && upper.ends_with(&format!(
                    "write it as 64 lower-case hex digits without colons: {CLIENT_SHA256}"
                )),
            "{upper}"
        );
        let short = err(&format!("[[principal]]\nname = \"a\"\n{}", cert("3da84bbc")));
        assert!(short.ends_with("64 lower-case hex digits"), "{short}");
        let unknown = err(&format!(
            "[[principal]]\nname = \"a\"\n{}fingerprint = \"x\"\n",
            cert(CLIENT_SHA256)
        ));
        assert!(unknown.contains("unknown field `fingerprint`"), "{unknown}");
        let missing = err("[[principal]]\nname = \"a\"\n[[principal.cert]]\nadded_at = \"2026-12-04T10:00:00Z\"\n");
        assert!(missing.contains("missing field `sha256`"), "{missing}");
        let when = err(&format!(
            "[[principal]]\nname = \"a\"\n{}revoked_at = \"soon\"\n",
            cert(CLIENT_SHA256)
        ));
        assert!(
            when.contains(&format!(
                "cert {CLIENT_SHA256}: revoked_at \"soon\" is not an RFC 3339 time"
            )),
            "{when}"
        );
    }

    #[test]
    fn saving_is_atomic_and_private() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("principals.toml");
        let mut principals = Principals::default();
        principals.add_principal("a", vec![Grant::parse("ci:read")?])?;
        principals.save(&path)?;
        assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        assert_eq!(Principals::load(&path)?, principals);
        assert!(!path.with_extension("toml.tmp").exists());
        Ok(())
    }
}
