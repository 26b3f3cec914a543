//! Client certificates bound to principals (mutual TLS): the SHA-256
//! fingerprint that names a certificate, and the `[[principal.cert]]`
//! entry of the principals file.
//!
//! A certificate is named by the SHA-256 of its DER encoding, the value
//! `openssl x509 -noout -fingerprint -sha256` prints. The principals file
//! holds one spelling only, 64 lower-case hex digits without colons (so a
//! duplicate is a duplicate string, and a read file writes back the same);
//! the command line also takes OpenSSL's `3D:A8:...` form. Whether a
//! certificate chains to the client CA is the TLS handshake's business
//! (rustls, `--tls-client-ca`), not this module's: here a verified
//! certificate is only looked up.

use std::fmt;

use chrono::{DateTime, Utc};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use super::AuthError;

/// Bytes of a SHA-256 fingerprint.
pub const FINGERPRINT_BYTES: usize = 32;

/// The SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint([u8; FINGERPRINT_BYTES]);

/// A client certificate bound to a principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertEntry {
    /// Which certificate.
    pub sha256: CertFingerprint,
    /// When it was bound.
    pub added_at: DateTime<Utc>,
    /// When it was revoked (`ledgerd auth revoke-cert`), if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl CertFingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> CertFingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0u8; FINGERPRINT_BYTES];
        bytes.copy_from_slice(digest.as_ref());
        CertFingerprint(bytes)
    }

    /// The fingerprint of the first `CERTIFICATE` block of a PEM file (a
    /// chain file starts with the client's own certificate).
    pub fn of_pem(pem: &[u8]) -> Result<CertFingerprint, AuthError> {
        let bad = |reason: String| AuthError::BadCert(reason);
        let der = CertificateDer::from_pem_slice(pem).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => bad("no PEM CERTIFICATE block found".to_string()),
            e => bad(format!("not a PEM certificate: {e}")),
        })?;
        // A certificate is a DER SEQUENCE: catch a block that decodes to
        // something else before its fingerprint is bound to anyone.
        if der.first() != Some(&0x30) || der.len() < 64 {
            return Err(bad("the CERTIFICATE block does not hold a DER certificate".to_string()));
        }
        Ok(CertFingerprint::of_der(&der))
    }

    /// Parses the file's spelling: exactly 64 lower-case hex digits. The
    /// error says how to write a fingerprint given in OpenSSL's form.
    pub fn parse(text: &str) -> Result<CertFingerprint, String> {
        let mut bytes = [0u8; FINGERPRINT_BYTES];
        if text.len() == 2 * FINGERPRINT_BYTES
            && hex::decode_to_slice(text, &mut bytes).is_ok()
            && text == hex::encode(bytes)
        {
            return Ok(CertFingerprint(bytes));
        }
        match CertFingerprint::parse_lenient(text) {
            Ok(fingerprint) => Err(format!(
                "sha256 {text:?}: write it as 64 lower-case hex digits without colons: {fingerprint}"
            )),
            Err(_) => Err(format!(
                "sha256 {text:?}: expected the certificate's SHA-256 fingerprint, 64 lower-case hex digits"
            )),
        }
    }

    /// Parses a fingerprint as a person may paste it: 64 hex digits in
    /// either case, with or without colons, and with or without OpenSSL's
    /// `sha256 Fingerprint=` in front.
    pub fn parse_lenient(text: &str) -> Result<CertFingerprint, AuthError> {
        let trimmed = text.trim();
        let value = match trimmed.split_once('=') {
            Some((label, value)) if label.trim().eq_ignore_ascii_case("sha256 fingerprint") => value,
            _ => trimmed,
        };
        let digits: String = value.chars().filter(|c| *c != ':').collect();
        let mut bytes = [0u8; FINGERPRINT_BYTES];
        if digits.len() != 2 * FINGERPRINT_BYTES || hex::decode_to_slice(&digits, &mut bytes).is_err() {
            return Err(AuthError::BadCert(format!(
                "{text:?} is not a SHA-256 fingerprint: expected 64 hex digits, with or without colons"
            )));
        }
        Ok(CertFingerprint(bytes))
    }

    /// The fingerprint's bytes.
    pub fn as_bytes(&self) -> &[u8; FINGERPRINT_BYTES] {
        &self.0
    }
}

/// 64 lower-case hex digits, as in the principals file.
impl fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({self})")
    }
}

impl CertEntry {
    /// Whether it still authenticates at `now`.
    pub fn is_revoked_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_some_and(|t| t <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `testdata/tls/client.pem` and what `openssl x509 -noout -fingerprint
    /// -sha256` says of it.
    const CLIENT_PEM: &str = include_str!("../../../testdata/tls/client.pem");
    const CLIENT_OPENSSL: &str = "sha256 Fingerprint=3D:A8:4B:BC:C5:2C:E0:11:A0:16:2B:AF:6E:0B:93:1C:62:B3:65:D0:B0:02:B3:E1:54:AA:C7:B8:82:5D:AF:01";
    const CLIENT_SHA256: &str = "3da84bbcc52ce011a0162baf6e0b931c62b365d0b002b3e154aac7b8825daf01";

    #[test]
    fn the_fingerprint_is_openssls() -> Result<(), AuthError> {
        let fingerprint = CertFingerprint::of_pem(CLIENT_PEM.as_bytes())?;
        assert_eq!(fingerprint.to_string(), CLIENT_SHA256);
        assert_eq!(CertFingerprint::parse_lenient(CLIENT_OPENSSL)?, fingerprint);
        assert_eq!(CertFingerprint::parse_lenient(&CLIENT_OPENSSL[19..])?, fingerprint);
        assert_eq!(
            CertFingerprint::parse_lenient(&CLIENT_SHA256.to_uppercase())?,
            fingerprint
        );
        assert_eq!(CertFingerprint::parse(CLIENT_SHA256), Ok(fingerprint));
        // A chain file: the first certificate is the client's.
        let chain = format!("{CLIENT_PEM}{}", include_str!("../../../testdata/tls/client-ca.pem"));
        assert_eq!(CertFingerprint::of_pem(chain.as_bytes())?, fingerprint);
        Ok(())
    }

    #[test]
    fn the_file_takes_one_spelling_and_says_which() {
        let err = |text: &str| CertFingerprint::parse(text).err().unwrap_or_default();
        assert_eq!(
            err(&CLIENT_OPENSSL[19..]),
            format!(
                "sha256 \"{}\": write it as 64 lower-case hex digits without colons: {CLIENT_SHA256}",
                &CLIENT_OPENSSL[19..]
            )
        );
        assert!(err(&CLIENT_SHA256.to_uppercase()).contains("without colons: 3da84bbc"));
        for bad in [
            "",
            "3da8",
            &format!("{CLIENT_SHA256}00"),
            &CLIENT_SHA256.replace('a', "g"),
        ] {
            assert!(
                err(bad).ends_with("expected the certificate's SHA-256 fingerprint, 64 lower-case hex digits"),
                "{bad}: {}",
                err(bad)
            );
        }
        let lenient = CertFingerprint::parse_lenient("3d:a8").err().map(|e| e.to_string());
        assert_eq!(
            lenient.as_deref(),
            Some(
                "client certificate: \"3d:a8\" is not a SHA-256 fingerprint: expected 64 hex digits, with or without colons"
            )
        );
    }

    #[test]
    fn a_file_without_a_certificate_is_refused() {
        let err = |pem: &str| CertFingerprint::of_pem(pem.as_bytes()).err().map(|e| e.to_string());
        assert_eq!(
            err(include_str!("../../../testdata/tls/client.key")).as_deref(),
            Some("client certificate: no PEM CERTIFICATE block found")
        );
        assert_eq!(
            err("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").as_deref(),
            Some("client certificate: the CERTIFICATE block does not hold a DER certificate")
        );
        assert!(err("-----BEGIN CERTIFICATE-----\nAAAA\n").is_some());
    }
}
