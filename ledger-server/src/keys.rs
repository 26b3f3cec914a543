//! The file side of a signing key rotation, shared by `ledgerd keys rotate`
//! ([`rotate`], with `ledgerd` stopped) and the `RotateSigningKey` admin
//! call (`crate::admin`, on a running `ledgerd`). The log side (the
//! `ledger.key_rotated` record, the switch to the new key) is
//! `Ledger::rotate_signer` in `ledger_core::rotation`.
//!
//! Order, so a crash at any step is resumed:
//! 1. [`stage_new_key`]: the new key is written to `<key>.new`, fsynced (or
//!    loaded from it: resuming);
//! 2. the ledger, open with the old key, appends the rotation record and
//!    switches to the new key (`Ledger::rotate_signer`), saving its
//!    checkpoint signed by the new key;
//! 3. [`install_new_key`]: both verifier keys are added to
//!    `<data>/ledger-keys.pub`; the old key moves to
//!    `<data>/retired-keys/<name>+<key id>.key` (with characters other than
//!    letters, digits, `.-_` in the name as `_`) and the new key takes its
//!    place (`<key>`, `<key>.pub`).
//!
//! After a crash between 1 and 2, the next rotation finds `<key>.new` and
//! uses it. After 2, the log has retired the key in `<key>`, and the ledger
//! no longer opens with it (`LedgerError::RetiredKey`): `ledgerd` then
//! finishes step 3 itself when it starts ([`resume_rotation`]), as does
//! `ledgerd keys rotate`. Between the two renames of step 3, `<key>` is
//! missing: [`finish_interrupted_install`] puts `<key>.new` in its place.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use ledger_core::rotation::resign_saved_checkpoint;
use ledger_core::signer::public_key_path;
use ledger_core::{Ledger, LedgerConfig, LedgerError, LocalKeySigner, Signer};
use ledger_verify::note::VerifierKey;

/// Every verifier key the ledger ever signed with, one per line.
pub const KEY_HISTORY_FILE: &str = "ledger-keys.pub";

/// Where retired private keys go, inside the data directory.
pub const RETIRED_KEYS_DIR: &str = "retired-keys";

fn io(context: String) -> impl FnOnce(std::io::Error) -> LedgerError {
    move |source| LedgerError::Io { context, source }
}

fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", dir.display())))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Where a rotation keeps the new key until it is installed: `<key>.new`.
pub fn staged_key_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_os_string();
    name.push(".new");
    PathBuf::from(name)
}

/// Step 1: a new key named `key_name`, durable in `<key>.new` before the
/// log hears of it; or the key already there (a resumed rotation: then
/// `true`).
pub fn stage_new_key(key_file: &Path, key_name: &str) -> Result<(LocalKeySigner, bool), LedgerError> {
    let staged = staged_key_path(key_file);
    if staged.exists() {
        return Ok((LocalKeySigner::load(&staged)?, true));
    }
    let new = LocalKeySigner::generate(key_name)?;
    new.save(&staged)?;
    sync_dir(parent_of(&staged))?;
    Ok((new, false))
}

/// Adds `keys` (verifier key lines) to the history file, each once.
fn publish(data: &Path, keys: &[String]) -> Result<(), LedgerError> {
    let path = data.join(KEY_HISTORY_FILE);
    let existing = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
    };
    let mut lines: Vec<String> = existing.lines().map(str::to_string).collect();
    if keys.iter().all(|key| lines.contains(key)) {
        return Ok(());
    }
    for key in keys {
        if !lines.contains(key) {
            lines.push(key.clone());
        }
    }
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    file.write_all(format!("{}\n", lines.join("\n")).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, &path).map_err(io(format!("renaming {}", tmp.display())))?;
    sync_dir(data)
}

/// Moves a key file and its `.pub` beside it.
fn move_key(from: &Path, to: &Path) -> Result<(), LedgerError> {
    fs::rename(from, to).map_err(io(format!("moving {} to {}", from.display(), to.display())))?;
    let from_pub = public_key_path(from);
    if from_pub.exists() {
        let to_pub = public_key_path(to);
        fs::rename(&from_pub, &to_pub).map_err(io(format!("moving {} to {}", from_pub.display(), to_pub.display())))?;
    }
    Ok(())
}

/// Step 3, once the log has switched from `old` to `new`: publishes both
/// verifier keys, retires the old key file into `<data>/retired-keys/` and
/// installs `<key>.new` as `<key>`. Each part is skipped when already done,
/// so it may be run again. Returns where the old key went.
pub fn install_new_key(
    data: &Path,
    key_file: &Path,
    old: &VerifierKey,
    new: &VerifierKey,
) -> Result<PathBuf, LedgerError> {
    publish(data, &[old.to_string(), new.to_string()])?;
    let retired = data.join(RETIRED_KEYS_DIR);
    fs::create_dir_all(&retired).map_err(io(format!("creating {}", retired.display())))?;
    // Key names may hold '/' (the origin by convention): keep file names flat.
    let name: String = old
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let retired_key = retired.join(format!("{name}+{}.key", hex::encode(old.key_id)));
    let bad = |reason: String| LedgerError::BadKeyFile {
        path: key_file.to_path_buf(),
        reason,
    };
    if key_file.exists() {
        let current = LocalKeySigner::load(key_file)?.verifier_key()?;
        if current == *old {
            move_key(key_file, &retired_key)?;
        } else if current != *new {
            return Err(bad(format!(
                "holds {current}, neither the retiring key {old} nor the new key {new}"
            )));
        }
    }
    let staged = staged_key_path(key_file);
    if staged.exists() {
        let staged_key = LocalKeySigner::load(&staged)?.verifier_key()?;
        if staged_key != *new {
            return Err(bad(format!(
                "{} holds {staged_key}, not the new key {new}",
                staged.display()
            )));
        }
        move_key(&staged, key_file)?;
    }
    sync_dir(&retired)?;
    sync_dir(parent_of(key_file))?;
    sync_dir(data)?;
    Ok(retired_key)
}

/// A crash between the two renames of step 3 leaves no `<key>` but a
/// `<key>.new`: the old key is already retired (after the log switched),
/// so the new key is put in place. Returns whether it was.
pub fn finish_interrupted_install(key_file: &Path) -> Result<bool, LedgerError> {
    let staged = staged_key_path(key_file);
    if key_file.exists() || !staged.exists() {
        return Ok(false);
    }
    move_key(&staged, key_file)?;
    sync_dir(parent_of(key_file))?;
    tracing::warn!(
        key_file = %key_file.display(),
        "finished an interrupted key rotation: installed the new signing key"
    );
    Ok(true)
}

/// When the ledger refused `<key>` as retired by the rotation to `new_key`
/// (verifier key text) and `<key>.new` holds that key, a rotation stopped
/// after the log switched: finishes step 3 and returns the new key, to
/// open the ledger with. Otherwise `None`.
pub fn resume_rotation(
    data: &Path,
    key_file: &Path,
    retired_key: &str,
    new_key: &str,
) -> Result<Option<LocalKeySigner>, LedgerError> {
    let staged = staged_key_path(key_file);
    if !staged.exists() {
        return Ok(None);
    }
    let new = LocalKeySigner::load(&staged)?;
    let new_verifier = new.verifier_key()?;
    if new_verifier.to_string() != new_key {
        return Ok(None);
    }
    let old = VerifierKey::parse(retired_key).map_err(|e| LedgerError::Signer(e.to_string()))?;
    let retired = install_new_key(data, key_file, &old, &new_verifier)?;
    tracing::warn!(
        retired = %old,
        current = %new_verifier,
        retired_key_file = %retired.display(),
        "finished an interrupted key rotation: the log had switched to the new key"
    );
    Ok(Some(new))
}

/// `ledgerd keys rotate`: rotates the signing key of the ledger in `data`
/// (see the module docs), or finishes an interrupted rotation.
pub fn rotate(data: &Path, key_file: &Path) -> anyhow::Result<()> {
    if !data.join("ledger.json").is_file() {
        bail!("data: {} holds no ledger (no ledger.json)", data.display());
    }
    if finish_interrupted_install(key_file)? {
        let current = LocalKeySigner::load(key_file)?.verifier_key()?;
        println!("finished an interrupted rotation (nothing else done)\n  current: {current}");
        return Ok(());
    }
    let old = LocalKeySigner::load(key_file).with_context(|| format!("key_file: {}", key_file.display()))?;
    let (new, staged) = stage_new_key(key_file, old.key_name())?;
    let (old_key, new_key) = (old.verifier_key()?, new.verifier_key()?);
    let new: Arc<LocalKeySigner> = Arc::new(new);

    let (seq, size, resumed) = match Ledger::open(data, LedgerConfig::default(), Arc::new(old)) {
        Ok(ledger) => {
            let outcome = ledger.rotate_signer(new.clone())?;
            let size = ledger.len();
            // Saves the checkpoint, signed by the new key.
            ledger.close()?;
            (outcome.seq, Some(size), staged || outcome.resumed)
        }
        // The log switched already; the files were not finished.
        Err(LedgerError::RetiredKey {
            rotation_seq,
            new_key: logged,
            ..
        }) if logged == new_key.to_string() => {
            resign_saved_checkpoint(data, &old_key, new.as_ref())?;
            (rotation_seq, None, true)
        }
        Err(err) => {
            return Err(err)
                .with_context(|| format!("opening the ledger in {} (is ledgerd still running?)", data.display()));
        }
    };
    let retired_key = install_new_key(data, key_file, &old_key, &new_key)?;
    println!(
        "rotated the signing key{}: rotation record at seq {seq}{}\n  retired: {old_key} (now {})\n  current: {new_key}\n  every key: {}",
        if resumed { " (resumed)" } else { "" },
        size.map(|size| format!(" (log size {size})")).unwrap_or_default(),
        retired_key.display(),
        data.join(KEY_HISTORY_FILE).display()
    );
    Ok(())
}
