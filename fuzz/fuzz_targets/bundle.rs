//! Any bytes as a bundle file: `verify_bundle` must return, never panic,
//! whether or not the input is trusted-key-signed (the fixture ledger key
//! is trusted, so mutations of the seed corpus reach the deep checks).

#![no_main]

use std::sync::OnceLock;

use ledger_verify::bundle::{VerifyOptions, verify_bundle};
use ledger_verify::note::VerifierKey;
use libfuzzer_sys::fuzz_target;

/// `testdata/bundles/ledger.pub`.
const LEDGER_KEY: &str = include_str!("../../testdata/bundles/ledger.pub");
/// `testdata/bundles/trusted.checkpoint`.
const TRUSTED: &str = include_str!("../../testdata/bundles/trusted.checkpoint");

fn keys() -> &'static [VerifierKey] {
    static KEYS: OnceLock<Vec<VerifierKey>> = OnceLock::new();
    KEYS.get_or_init(|| VerifierKey::parse(LEDGER_KEY.trim_end()).into_iter().collect())
}

fuzz_target!(|data: &[u8]| {
    let trusted = [TRUSTED.to_string()];
    let _ = verify_bundle(
        data,
        VerifyOptions {
            keys: keys(),
            trusted_checkpoints: &trusted,
        },
    );
    let _ = verify_bundle(data, VerifyOptions::default());
});
