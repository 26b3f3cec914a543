//! Who signs checkpoints: the [`Signer`] trait and its local-key-file
//! implementation. A KMS or HSM signer implements the same trait later.
//!
//! Key file format (the signed-note convention for private keys):
//! `PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 ‖ 32-byte ed25519 seed)>`,
//! one line, mode 0600. The public half is written beside it as a verifier
//! key line, `<name>+<key id>+<base64(0x01 ‖ public key)>`.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey};
use ledger_verify::note::{VerifierKey, is_valid_key_name, key_id};

use crate::error::{LedgerError, Result};

/// Produces ed25519 signatures for checkpoints (and, later, bundles).
pub trait Signer: Send + Sync + fmt::Debug {
    /// The key name that appears on signature lines.
    fn key_name(&self) -> &str;
    /// The ed25519 public key.
    fn public_key(&self) -> [u8; 32];
    /// Signs `message`.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64]>;
    /// The verifier key auditors use: `name+keyid+base64(0x01 ‖ key)`.
    fn verifier_key(&self) -> Result<VerifierKey> {
        VerifierKey::from_public(self.key_name(), self.public_key()).map_err(|e| LedgerError::Signer(e.to_string()))
    }
}

/// An ed25519 key held in a local file.
pub struct LocalKeySigner {
    name: String,
    key: SigningKey,
}

impl fmt::Debug for LocalKeySigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("LocalKeySigner")
            .field("name", &self.name)
            .field("public_key", &hex::encode(self.key.verifying_key().as_bytes()))
            .finish()
    }
}

const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

impl LocalKeySigner {
    /// A fresh random key.
    pub fn generate(name: &str) -> Result<LocalKeySigner> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| LedgerError::Signer(format!("no randomness for key generation: {e}")))?;
        LocalKeySigner::from_seed(name, seed)
    }

    /// A key from a 32-byte seed (deterministic: tests and vectors). The
    /// name must be a valid note key name: non-empty, no spaces or `+`.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<LocalKeySigner> {
        if !is_valid_key_name(name) {
            return Err(LedgerError::Signer(format!(
                "key name {name:?} is not valid: it must be non-empty, without whitespace or '+'"
            )));
        }
        Ok(LocalKeySigner {
            name: name.to_string(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The private key line.
    fn private_line(&self) -> String {
        let public = self.key.verifying_key().to_bytes();
        let mut encoded = vec![0x01];
        encoded.extend_from_slice(self.key.as_bytes());
        format!(
            "{PRIVATE_PREFIX}{}+{}+{}",
            self.name,
            hex::encode(key_id(&self.name, &public)),
            BASE64.encode(encoded)
        )
    }

    /// Writes the key to `path` (mode 0600, never overwriting) and its
    /// verifier key to `path.pub`.
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let ctx = |what: &str| format!("{what} {}", path.display());
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| LedgerError::io(ctx("creating key file"), e))?;
        writeln!(file, "{}", self.private_line())
            .and_then(|()| file.sync_all())
            .map_err(|e| LedgerError::io(ctx("writing key file"), e))?;
        let public_path = public_key_path(path);
        std::fs::write(&public_path, format!("{}\n", self.verifier_key()?))
            .map_err(|e| LedgerError::io(format!("writing {}", public_path.display()), e))?;
        Ok(())
    }

    /// Reads a key file written by [`LocalKeySigner::save`].
    pub fn load(path: &Path) -> Result<LocalKeySigner> {
        let bad = |reason: &str| LedgerError::BadKeyFile {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| LedgerError::io(format!("reading key file {}", path.display()), e))?;
        let line = text.trim_end_matches('\n');
        let rest = line
            .strip_prefix(PRIVATE_PREFIX)
            .ok_or_else(|| bad("does not start with PRIVATE+KEY+"))?;
        // Names never contain '+'; base64 may, so split from the left.
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(encoded)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected PRIVATE+KEY+<name>+<key id>+<key>"));
        };
        let decoded = BASE64.decode(encoded).map_err(|_| bad("key is not base64"))?;
        let Some((&0x01, seed)) = decoded.split_first() else {
            return Err(bad("key does not start with the ed25519 algorithm byte 0x01"));
        };
        let seed: [u8; 32] = seed.try_into().map_err(|_| bad("ed25519 seed is not 32 bytes"))?;
        let signer = LocalKeySigner::from_seed(name, seed).map_err(|_| bad("key name is not valid"))?;
        if hex::encode(key_id(name, &signer.public_key())) != id_hex {
            return Err(bad("key id does not match the name and key"));
        }
        Ok(signer)
    }
}

/// `<key path>.pub`.
pub fn public_key_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".pub");
    name.into()
}

impl Signer for LocalKeySigner {
    fn key_name(&self) -> &str {
        &self.name
    }

    fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64]> {
        Ok(self.key.sign(message).to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip_and_permissions() -> Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().map_err(|e| LedgerError::io("tempdir", e))?;
        let path = dir.path().join("ledger.key");
        let signer = LocalKeySigner::generate("ledger.example/log")?;
        signer.save(&path)?;
        // Seeds whose base64 contains '+' and '/' load too.
        for seed in 0..32u8 {
            let seeded = LocalKeySigner::from_seed("n", [seed.wrapping_mul(37); 32])?;
            let seeded_path = dir.path().join(format!("k{seed}"));
            seeded.save(&seeded_path)?;
            assert_eq!(LocalKeySigner::load(&seeded_path)?.public_key(), seeded.public_key());
        }
        let mode = std::fs::metadata(&path)
            .map_err(|e| LedgerError::io("stat", e))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = LocalKeySigner::load(&path)?;
        assert_eq!(loaded.public_key(), signer.public_key());
        assert_eq!(loaded.key_name(), "ledger.example/log");
        let public = std::fs::read_to_string(public_key_path(&path)).map_err(|e| LedgerError::io("read", e))?;
        assert_eq!(public.trim_end(), signer.verifier_key()?.to_string());
        assert!(
            matches!(signer.save(&path), Err(LedgerError::Io { .. })),
            "never overwrites a key"
        );
        Ok(())
    }

    #[test]
    fn load_rejects_tampered_files() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| LedgerError::io("tempdir", e))?;
        let path = dir.path().join("k");
        let line = LocalKeySigner::from_seed("n", [7; 32])?.private_line();
        for bad in [
            line.replacen("PRIVATE", "PUBLIC", 1),
            line.replacen("+n+", "+m+", 1),
            format!("{}x", &line[..line.len() - 2]),
        ] {
            std::fs::write(&path, bad).map_err(|e| LedgerError::io("write", e))?;
            assert!(matches!(
                LocalKeySigner::load(&path),
                Err(LedgerError::BadKeyFile { .. })
            ));
        }
        Ok(())
    }
}
