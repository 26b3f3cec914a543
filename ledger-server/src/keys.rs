//! `ledgerd keys rotate`: the file side of a key rotation; the log side
//! (the `ledger.key_rotated` record, the re-signed saved checkpoint) is
//! `ledger_core::rotation`.
//!
//! Order, so a crash at any step is resumed by running the command again:
//! 1. the new key is written to `<key>.new` (or loaded from it: resuming);
//! 2. the ledger is opened with the old key and the rotation record
//!    appended (idempotent: its id derives from the new key), then closed;
//! 3. the saved checkpoint is re-signed with the new key;
//! 4. both verifier keys are added to `<data>/ledger-keys.pub`;
//! 5. the old key moves to `<data>/retired-keys/<name>+<key id>.key` (with
//!    characters other than letters, digits, `.-_` in the name as `_`) and
//!    the new key takes its place (`<key>`, `<key>.pub`).
//!
//! The ledger's directory lock makes the command fail while `ledgerd` runs.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use ledger_core::rotation::{append_rotation, resign_saved_checkpoint};
use ledger_core::signer::public_key_path;
use ledger_core::{Ledger, LedgerConfig, LocalKeySigner, Signer};

/// Every verifier key the ledger ever signed with, one per line.
pub const KEY_HISTORY_FILE: &str = "ledger-keys.pub";

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// Adds `keys` (verifier key lines) to the history file, each once.
fn publish(data: &Path, keys: &[String]) -> anyhow::Result<()> {
    let path = data.join(KEY_HISTORY_FILE);
    let existing = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut lines: Vec<String> = existing.lines().map(str::to_string).collect();
    for key in keys {
        if !lines.contains(key) {
            lines.push(key.clone());
        }
    }
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(format!("{}\n", lines.join("\n")).as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("renaming {}", tmp.display()))
}

/// Rotates the signing key of the ledger in `data` (see the module docs).
pub fn rotate(data: &Path, key_file: &Path) -> anyhow::Result<()> {
    if !data.join("ledger.json").is_file() {
        bail!("data: {} holds no ledger (no ledger.json)", data.display());
    }
    let old = LocalKeySigner::load(key_file).with_context(|| format!("key_file: {}", key_file.display()))?;
    let new_path = key_file.with_extension("key.new");
    let new = if new_path.exists() {
        LocalKeySigner::load(&new_path).with_context(|| format!("resuming with {}", new_path.display()))?
    } else {
        let new = LocalKeySigner::generate(old.key_name())?;
        new.save(&new_path)?;
        new
    };
    let (old_key, new_key) = (old.verifier_key()?, new.verifier_key()?);

    let ledger = Ledger::open(data, LedgerConfig::default(), Arc::new(old))
        .with_context(|| format!("opening the ledger in {} (is ledgerd still running?)", data.display()))?;
    let outcome = append_rotation(&ledger, &new)?;
    let size = ledger.len();
    ledger.close()?;
    resign_saved_checkpoint(data, &old_key, &new)?;
    publish(data, &[old_key.to_string(), new_key.to_string()])?;

    let retired = data.join("retired-keys");
    fs::create_dir_all(&retired).with_context(|| format!("creating {}", retired.display()))?;
    // Key names may hold '/' (the origin by convention): keep file names flat.
    let name: String = old_key
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
    let retired_key = retired.join(format!("{name}+{}.key", hex::encode(old_key.key_id)));
    fs::rename(key_file, &retired_key)
        .with_context(|| format!("moving {} to {}", key_file.display(), retired_key.display()))?;
    let old_pub = public_key_path(key_file);
    if old_pub.exists() {
        fs::rename(&old_pub, public_key_path(&retired_key)).with_context(|| format!("moving {}", old_pub.display()))?;
    }
    fs::rename(&new_path, key_file).with_context(|| format!("installing {}", key_file.display()))?;
    let new_pub = public_key_path(&new_path);
    if new_pub.exists() {
        fs::rename(&new_pub, &old_pub).with_context(|| format!("installing {}", old_pub.display()))?;
    }
    sync_dir(&retired)?;
    if let Some(parent) = key_file.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    sync_dir(data)?;
    println!(
        "rotated the signing key{}: rotation record at seq {} (log size {size})\n  retired: {old_key} (now {})\n  current: {new_key}\n  every key: {}",
        if outcome.resumed { " (resumed)" } else { "" },
        outcome.seq,
        retired_key.display(),
        data.join(KEY_HISTORY_FILE).display()
    );
    Ok(())
}
