//! Where `ledgerd` keeps the bundles it made: `<data>/bundles/`, one
//! `<id>.bundle.json` (the file, byte for byte as served) and one
//! `<id>.summary.json` (what `List` shows, so listing never parses
//! bundles).
//!
//! Bundles are artifacts, not evidence: each can be made again from the log
//! (with a new id and time). Files are written to a temporary name, fsynced
//! and renamed, summary last, so a listed bundle is always complete.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ledger_verify::bundle::{Bundle, manifest_digest};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What `List` reports of a stored bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleSummary {
    /// The bundle's UUID.
    pub bundle_id: String,
    /// When it was made (RFC 3339, from the manifest).
    pub created_at: String,
    /// The selector, as given.
    pub selector: std::collections::BTreeMap<String, String>,
    /// Records in it.
    pub record_count: u64,
    /// Tree size of its checkpoint.
    pub checkpoint_size: u64,
    /// File size.
    pub bytes: u64,
    /// Hex BLAKE3 of the manifest encoding (what the ledger key signed).
    pub manifest_digest: String,
    /// Whether the payloads were left out.
    pub payloads_withheld: bool,
    /// The namespaces of its records, sorted: who may read all of them may
    /// get the bundle. Absent in summaries written before authorization
    /// existed; such a bundle is shown only to callers who read every
    /// namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
}

/// Why a stored bundle could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The id is not a UUID (ids name files: nothing else is accepted).
    #[error("bundle_id: {0:?} is not a UUID")]
    BadId(String),
    /// No bundle with that id.
    #[error("bundle {0} not found")]
    NotFound(String),
    /// The bundle does not serialise (a field is malformed).
    #[error("bundle: {0}")]
    Encode(String),
    /// The file system failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Io { context, source }
}

/// The bundle directory.
#[derive(Clone, Debug)]
pub struct BundleStore {
    dir: PathBuf,
}

impl BundleStore {
    /// The store under `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> BundleStore {
        BundleStore { dir: dir.into() }
    }

    fn path(&self, id: &Uuid, suffix: &str) -> PathBuf {
        self.dir.join(format!("{id}.{suffix}"))
    }

    /// The bundle file of `id`, if stored.
    pub fn file(&self, id: &str) -> Result<PathBuf, StoreError> {
        let id = Uuid::parse_str(id).map_err(|_| StoreError::BadId(id.to_string()))?;
        let path = self.path(&id, "bundle.json");
        if path.is_file() {
            Ok(path)
        } else {
            Err(StoreError::NotFound(id.to_string()))
        }
    }

    /// The summary of bundle `id`, if stored.
    pub fn summary(&self, id: &str) -> Result<BundleSummary, StoreError> {
        let id = Uuid::parse_str(id).map_err(|_| StoreError::BadId(id.to_string()))?;
        let path = self.path(&id, "summary.json");
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::NotFound(id.to_string())),
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
        };
        serde_json::from_slice(&text).map_err(|e| StoreError::Encode(format!("{}: {e}", path.display())))
    }

    /// Writes `bundle` (whose records are in `namespaces`) durably and
    /// returns its summary.
    pub fn put(
        &self,
        bundle: &Bundle,
        payloads_withheld: bool,
        namespaces: Vec<String>,
    ) -> Result<BundleSummary, StoreError> {
        let id = Uuid::parse_str(&bundle.manifest.bundle_id)
            .map_err(|_| StoreError::BadId(bundle.manifest.bundle_id.clone()))?;
        let mut bytes = serde_json::to_vec_pretty(bundle).map_err(|e| StoreError::Encode(e.to_string()))?;
        bytes.push(b'\n');
        let digest = manifest_digest(&bundle.manifest).map_err(|e| StoreError::Encode(e.to_string()))?;
        let manifest = &bundle.manifest;
        let summary = BundleSummary {
            bundle_id: id.to_string(),
            created_at: manifest.created_at.clone(),
            selector: manifest.selector.clone(),
            record_count: manifest.record_count,
            checkpoint_size: manifest.checkpoint_size,
            bytes: bytes.len() as u64,
            manifest_digest: hex::encode(digest),
            payloads_withheld,
            namespaces: Some(namespaces),
        };
        let summary_bytes = serde_json::to_vec(&summary).map_err(|e| StoreError::Encode(e.to_string()))?;
        fs::create_dir_all(&self.dir).map_err(io(format!("creating {}", self.dir.display())))?;
        write_atomically(&self.path(&id, "bundle.json"), &bytes)?;
        write_atomically(&self.path(&id, "summary.json"), &summary_bytes)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("syncing {}", self.dir.display())))?;
        Ok(summary)
    }

    /// Every stored bundle's summary, newest first.
    pub fn list(&self) -> Result<Vec<BundleSummary>, StoreError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(format!("listing {}", self.dir.display()))(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(io(format!("listing {}", self.dir.display())))?.path();
            if !path.to_string_lossy().ends_with(".summary.json") {
                continue;
            }
            let text = fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
            match serde_json::from_slice::<BundleSummary>(&text) {
                Ok(summary) => out.push(summary),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "skipping an unreadable bundle summary"),
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.bundle_id.cmp(&a.bundle_id)));
        Ok(out)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io(format!("renaming {}", tmp.display())))
}
