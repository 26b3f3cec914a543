//! `ledger-verify`: everything an auditor needs to re-check evidence-ledger
//! data offline — canonical record bytes, hashes, Merkle proofs, signed
//! checkpoints — and nothing else.
//!
//! Architecture invariant: this crate depends on no async runtime, no storage
//! engine and no gRPC. `ledger-core` builds on it, so the server and the
//! verifier can never disagree about a byte.

#![deny(missing_docs)]

pub mod batch;
pub mod bundle;
pub mod chain;
pub mod hash;
pub mod merkle;
pub mod note;
pub mod proof_json;
pub mod record;
pub mod rotation;

pub use hash::{Hash, HashAlg};
