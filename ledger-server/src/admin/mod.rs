//! Access administration of a running `ledgerd`, recorded in the ledger.
//!
//! Who may call and what the ledger accepts live in the principals file
//! ([`crate::auth::principals`]). Every change to it that `ledgerd` makes
//! (the `ledger.v1.Admin` service, [`service`]) is appended to the ledger
//! as an `admin.*` event in stream [`ADMIN_STREAM`] *before* it takes
//! effect:
//!
//! 1. under the admin lock and the file's lock, the file is re-read (an
//!    outside edit not yet picked up is recorded first, see below) and the
//!    change applied to a copy, which is validated and written, fsynced,
//!    beside the file;
//! 2. the event (actor, action, request, one line per change, the new
//!    file's BLAKE3) is appended and awaited: durable;
//! 3. the new file is renamed into place and put in force.
//!
//! A failure before 3 leaves the old file in force and, if the event was
//! appended, a second event saying the change was not applied. So the log
//! never misses a change that took effect.
//!
//! Edits made around the service (`ledgerd auth`, an editor) are recorded
//! too: when the reload poll finds the file changed, the change is appended
//! as `admin.principals_file_changed` with actor `file`; and at start, a
//! file whose digest differs from the last one recorded is appended as
//! `admin.principals_file_loaded`, with the whole file described.
//!
//! Rotating the ledger's signing key ([`Admin::rotate_signing_key`]) is an
//! admin change too, made under the same lock, but not to the file: the
//! ledger's own `ledger.key_rotated` record (stream `ledger/keys`) is
//! appended before the new key signs anything, and once the key files are
//! in place `admin.signing_key_rotated` records who asked for it.
//!
//! Events hold names, grants, key ids, public keys, dates and digests:
//! never a key's secret, hash or salt. `ledger` is a system namespace, so
//! only `admin` on it can append there by hand.

pub mod changes;
pub mod service;

use std::path::PathBuf;
use std::sync::Arc;

use ledger_core::{AppendRequest, Event, Ledger, LedgerError};
use ledger_verify::note::VerifierKey;
use serde_json::{Value, json};
use tonic::Status;

use crate::auth::{AuthError, Authenticator, Principals};

/// The stream the admin events go to.
pub const ADMIN_STREAM: &str = "ledger/admin";

/// The actor of changes found in the file rather than made through the
/// service.
pub const FILE_ACTOR: &str = "file";

/// Where a change was recorded.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Seq of the `admin.*` event.
    pub seq: u64,
    /// Its event id.
    pub event_id: uuid::Uuid,
    /// BLAKE3 of the file written.
    pub digest: blake3::Hash,
    /// What changed.
    pub changes: Vec<String>,
}

/// Where the ledger's signing key lives (for [`Admin::rotate_signing_key`]).
#[derive(Clone, Debug)]
pub struct SigningKeyFiles {
    /// The ledger's data directory (`ledger-keys.pub`, `retired-keys/`).
    pub data_dir: PathBuf,
    /// The signing key file in use.
    pub key_file: PathBuf,
}

/// A signing key rotation, made or finished.
#[derive(Clone, Debug)]
pub struct SigningKeyRotated {
    /// Seq of the `ledger.key_rotated` record.
    pub rotation_seq: u64,
    /// The retired key.
    pub old_key: VerifierKey,
    /// The key signing now.
    pub new_key: VerifierKey,
    /// Whether an earlier, unfinished rotation was finished.
    pub resumed: bool,
    /// Seq of the `admin.signing_key_rotated` event.
    pub seq: u64,
    /// Its event id.
    pub event_id: uuid::Uuid,
    /// What changed, as in the event.
    pub changes: Vec<String>,
    /// The principals file's last recorded digest (hex), carried forward
    /// in the event; empty in development mode.
    pub policy_digest: String,
}

/// Why an admin change was not made.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The server has no principals file.
    #[error("ledgerd runs in development mode (no principals file): start it with --principals to administer access")]
    Development,
    /// The change itself is refused (names the field and the reason).
    #[error("{0}")]
    Refused(String),
    /// The change would change nothing.
    #[error("nothing to change: {0}")]
    NoChange(String),
    /// The principals file could not be read or written.
    #[error(transparent)]
    File(AuthError),
    /// The ledger refused or failed the admin event.
    #[error("recording the change in the ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// A blocking task died.
    #[error("admin task: {0}")]
    Task(String),
}

impl From<AuthError> for AdminError {
    fn from(err: AuthError) -> AdminError {
        match err {
            AuthError::File { .. } | AuthError::Random(_) => AdminError::File(err),
            other => AdminError::Refused(other.to_string()),
        }
    }
}

impl From<AdminError> for Status {
    fn from(err: AdminError) -> Status {
        match err {
            AdminError::Ledger(inner) => crate::status::status(inner),
            AdminError::Development => Status::failed_precondition(err.to_string()),
            AdminError::Refused(_) => Status::invalid_argument(err.to_string()),
            AdminError::NoChange(_) => Status::failed_precondition(err.to_string()),
            AdminError::File(_) | AdminError::Task(_) => {
                tracing::error!(error = %err, "admin change failed on a server-side error");
                Status::internal("server-side error changing the principals file (logged by the server)")
            }
        }
    }
}

/// The admin side of a running server: applies and records changes.
#[derive(Debug)]
pub struct Admin {
    ledger: Arc<Ledger>,
    auth: Arc<Authenticator>,
    keys: SigningKeyFiles,
    /// Held for a whole change, and by the reload poll: one writer at a
    /// time inside this process (the file lock covers other processes).
    edits: tokio::sync::Mutex<()>,
}

impl Admin {
    /// The admin side of `ledger` served with `auth`, signing with the key
    /// in `keys`.
    pub fn new(ledger: Arc<Ledger>, auth: Arc<Authenticator>, keys: SigningKeyFiles) -> Admin {
        Admin {
            ledger,
            auth,
            keys,
            edits: tokio::sync::Mutex::new(()),
        }
    }

    /// The authenticator whose file this changes.
    pub fn auth(&self) -> &Arc<Authenticator> {
        &self.auth
    }

    /// Applies `edit` to the principals file and records it (see the
    /// module docs for the order). `action` names the event type
    /// (`admin.<action>`), `request` what was asked, as JSON without
    /// secrets. Returns what `edit` returned and where it was recorded.
    pub async fn change<T, F>(
        &self,
        actor: &str,
        action: &str,
        request: Value,
        edit: F,
    ) -> Result<(T, Recorded), AdminError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Principals) -> Result<T, AdminError> + Send + 'static,
    {
        let path = self.auth.path().ok_or(AdminError::Development)?.to_path_buf();
        let _edits = self.edits.lock().await;
        self.record_outside_edit().await?;
        let auth = Arc::clone(&self.auth);
        let staged = tokio::task::spawn_blocking(move || -> Result<_, AdminError> {
            let lock = Principals::lock(&path)?;
            let before = auth.principals();
            let mut after = Principals::clone(&before);
            let out = edit(&mut after)?;
            // Validates what the reload would: a file that would not load
            // is never written.
            let text = after.to_toml()?;
            Principals::parse(&text, &path).map_err(|e| match e {
                AuthError::File { reason, .. } => AdminError::Refused(reason),
                other => AdminError::from(other),
            })?;
            let lines = changes::describe(&before, &after);
            if lines.is_empty() {
                return Err(AdminError::NoChange("the file would stay as it is".to_string()));
            }
            let staged = after.stage(&path)?;
            Ok((lock, after, staged, lines, out))
        })
        .await
        .map_err(|e| AdminError::Task(e.to_string()))??;
        let (lock, after, staged, lines, out) = staged;
        let payload = json!({
            "actor": actor,
            "action": action,
            "request": request,
            "changes": lines,
            "policy_digest": staged.digest().to_hex().to_string(),
        });
        let (seq, event_id) = self.append(&format!("admin.{action}"), &payload).await?;
        let digest = staged.digest();
        let auth = Arc::clone(&self.auth);
        let committed = tokio::task::spawn_blocking(move || -> Result<(), AuthError> {
            staged.commit()?;
            auth.install(after)?;
            drop(lock);
            Ok(())
        })
        .await
        .map_err(|e| AdminError::Task(e.to_string()))
        .and_then(|r| r.map_err(AdminError::File));
        if let Err(err) = committed {
            let failed = json!({
                "actor": actor,
                "action": action,
                "failed_event_id": event_id.to_string(),
                "failed_seq": seq,
                "reason": "the principals file could not be put in place; the change did not take effect",
            });
            if let Err(second) = self.append("admin.change_failed", &failed).await {
                tracing::error!(error = %second, "recording a failed admin change");
            }
            return Err(err);
        }
        tracing::info!(
            actor,
            action,
            seq,
            changes = lines.len(),
            "admin change recorded and applied"
        );
        Ok((
            out,
            Recorded {
                seq,
                event_id,
                digest,
                changes: lines,
            },
        ))
    }

    /// Rotates the ledger's signing key on the running ledger, for `actor`
    /// (`ledgerd keys rotate` is the offline twin; both share
    /// `crate::keys`). Under the admin lock:
    ///
    /// 1. an outside edit of the principals file not yet recorded is
    ///    recorded, so the event below can carry the file's digest forward
    ///    (the file itself does not change);
    /// 2. a new key, named as the current one, is written to `<key>.new`
    ///    (or the one there is taken: resuming);
    /// 3. the ledger appends the `ledger.key_rotated` record and switches
    ///    to the new key (`Ledger::rotate_signer`, `docs/FORMAT.md` §6.1);
    /// 4. both verifier keys are published, the old key file retired and
    ///    the new one installed (`crate::keys::install_new_key`);
    /// 5. `admin.signing_key_rotated` is appended.
    ///
    /// A failure after 3 leaves the ledger signing with the new key; a
    /// second call (or a restart, which finishes step 4 itself) completes
    /// the rotation, and the second call records it.
    pub async fn rotate_signing_key(&self, actor: &str) -> Result<SigningKeyRotated, AdminError> {
        let _edits = self.edits.lock().await;
        let policy_digest = if self.auth.path().is_some() {
            self.record_outside_edit().await?;
            let ledger = Arc::clone(&self.ledger);
            tokio::task::spawn_blocking(move || last_recorded_digest(&ledger))
                .await
                .map_err(|e| AdminError::Task(e.to_string()))??
        } else {
            None
        };
        let (ledger, keys) = (Arc::clone(&self.ledger), self.keys.clone());
        let (outcome, old_key, new_key, staged) = tokio::task::spawn_blocking(move || -> Result<_, AdminError> {
            let current = ledger.verifier_key()?;
            let (new, staged) = crate::keys::stage_new_key(&keys.key_file, &current.name)?;
            let outcome = ledger.rotate_signer(Arc::new(new))?;
            let (old_key, new_key) = outcome
                .rotation
                .verify()
                .map_err(|e| AdminError::Ledger(LedgerError::Signer(e.to_string())))?;
            crate::keys::install_new_key(&keys.data_dir, &keys.key_file, &old_key, &new_key)?;
            Ok((outcome, old_key, new_key, staged))
        })
        .await
        .map_err(|e| AdminError::Task(e.to_string()))??;
        let resumed = staged || outcome.resumed;
        let changes = vec![
            format!("signing key {old_key} retired"),
            format!(
                "signing key {new_key} signs every tree past size {} (rotation record at seq {})",
                outcome.seq + 1,
                outcome.seq
            ),
        ];
        let mut payload = json!({
            "actor": actor,
            "action": "signing_key_rotated",
            "old_key": old_key.to_string(),
            "new_key": new_key.to_string(),
            "rotation_seq": outcome.seq,
            "resumed": resumed,
            "changes": changes,
        });
        if let (Some(digest), Some(fields)) = (&policy_digest, payload.as_object_mut()) {
            fields.insert("policy_digest".to_string(), Value::String(digest.clone()));
        }
        let (seq, event_id) = self.append("admin.signing_key_rotated", &payload).await?;
        tracing::info!(actor, seq, rotation_seq = outcome.seq, old_key = %old_key, new_key = %new_key, "signing key rotated");
        Ok(SigningKeyRotated {
            rotation_seq: outcome.seq,
            old_key,
            new_key,
            resumed,
            seq,
            event_id,
            changes,
            policy_digest: policy_digest.unwrap_or_default(),
        })
    }

    /// Reloads the file if it changed outside the service, recording the
    /// change. Called by the reload poll and before every admin change.
    pub async fn follow_file(&self) -> Result<bool, AdminError> {
        let _edits = self.edits.lock().await;
        self.record_outside_edit().await
    }

    async fn record_outside_edit(&self) -> Result<bool, AdminError> {
        let auth = Arc::clone(&self.auth);
        let reloaded = tokio::task::spawn_blocking(move || auth.reload_if_changed())
            .await
            .map_err(|e| AdminError::Task(e.to_string()))??;
        let Some(reloaded) = reloaded else {
            return Ok(false);
        };
        let lines = changes::describe(&reloaded.previous, &reloaded.current);
        tracing::info!(
            principals = reloaded.current.principals.len(),
            changes = lines.len(),
            "principals file changed outside ledgerd: reloaded"
        );
        if !lines.is_empty() {
            let payload = json!({
                "actor": FILE_ACTOR,
                "action": "principals_file_changed",
                "changes": lines,
                "policy_digest": reloaded.digest.to_hex().to_string(),
            });
            self.append("admin.principals_file_changed", &payload).await?;
        }
        Ok(true)
    }

    /// At start: records the file in force unless the last admin event
    /// already has its digest (a first start, or edits made while
    /// `ledgerd` was down).
    pub async fn record_file_at_start(&self) -> Result<(), AdminError> {
        let Some(path) = self.auth.path().map(std::path::Path::to_path_buf) else {
            return Ok(());
        };
        let _edits = self.edits.lock().await;
        let ledger = Arc::clone(&self.ledger);
        let (text, last) = tokio::task::spawn_blocking(move || -> Result<_, AdminError> {
            let text = std::fs::read(&path).map_err(|e| AuthError::File {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            Ok((text, last_recorded_digest(&ledger)?))
        })
        .await
        .map_err(|e| AdminError::Task(e.to_string()))??;
        let digest = blake3::hash(&text).to_hex().to_string();
        if last.as_deref() == Some(digest.as_str()) {
            return Ok(());
        }
        let state = changes::describe(&Principals::default(), &self.auth.principals());
        let payload = json!({
            "actor": FILE_ACTOR,
            "action": "principals_file_loaded",
            "previous_digest": last,
            "state": state,
            "policy_digest": digest,
        });
        self.append("admin.principals_file_loaded", &payload).await?;
        Ok(())
    }

    async fn append(&self, event_type: &str, payload: &Value) -> Result<(u64, uuid::Uuid), AdminError> {
        let event = Event::json(ADMIN_STREAM, event_type, payload.to_string().into_bytes());
        let id = event.id;
        let outcome = self.ledger.append_async(AppendRequest::new(vec![event])).await?;
        let seq = outcome
            .receipts
            .first()
            .map(|r| r.seq)
            .ok_or_else(|| AdminError::Task("the ledger returned no receipt for the admin event".to_string()))?;
        Ok((seq, id))
    }
}

/// The `policy_digest` of the last admin event, if any.
fn last_recorded_digest(ledger: &Ledger) -> Result<Option<String>, LedgerError> {
    let Some(head) = ledger.stream_head(ADMIN_STREAM)? else {
        return Ok(None);
    };
    let records = ledger.read_stream(ADMIN_STREAM, head, 1)?;
    Ok(records.first().and_then(|record| {
        serde_json::from_slice::<Value>(&record.payload)
            .ok()
            .and_then(|v| v.get("policy_digest").and_then(Value::as_str).map(str::to_string))
    }))
}
