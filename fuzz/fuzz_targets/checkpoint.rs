//! Any text as a signed checkpoint note: `open_checkpoint` (note parsing,
//! signature checks, body parsing) must return, never panic.

#![no_main]

use std::sync::OnceLock;

use ledger_verify::note::{Checkpoint, VerifierKey, open_checkpoint, parse_note};
use libfuzzer_sys::fuzz_target;

/// `testdata/bundles/ledger.pub`.
const LEDGER_KEY: &str = include_str!("../../testdata/bundles/ledger.pub");

fn keys() -> &'static [VerifierKey] {
    static KEYS: OnceLock<Vec<VerifierKey>> = OnceLock::new();
    KEYS.get_or_init(|| VerifierKey::parse(LEDGER_KEY.trim_end()).into_iter().collect())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = open_checkpoint(text, keys());
        let _ = parse_note(text);
        let _ = Checkpoint::parse_body(text);
        let _ = VerifierKey::parse(text);
    }
});
