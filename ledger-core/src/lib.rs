//! `ledger-core`: the evidence ledger library.
//!
//! Producers append [`Event`]s in atomic batches; the ledger assigns each a
//! global `seq`, chains it by hash to the previous record, writes it to an
//! append-only segment log with group commit (acknowledged only after
//! fsync), adds it to a Merkle tree and signs a checkpoint. Derived indexes
//! live in a rebuildable [`store::Store`]. The canonical byte formats and
//! proof verification come from `ledger-verify`, so the server and the
//! offline verifier share one definition of every hashed byte.
//!
//! Architecture invariant: this crate knows nothing about gRPC or tonic.

#![deny(missing_docs)]

pub mod bundle;
pub mod checkpoint;
mod commit;
pub mod config;
pub mod error;
pub mod event;
mod helpers;
mod ids;
mod indexer;
mod ledger;
pub mod namespace;
pub mod producer;
pub mod projection;
mod reader;
pub mod record;
pub mod rotation;
pub mod sample;
pub mod scan;
pub mod segment;
pub mod signer;
pub mod store;

pub use checkpoint::SignedCheckpoint;
pub use commit::AppendOutcome;
pub use config::LedgerConfig;
pub use error::{LedgerError, Result};
pub use event::{AppendRequest, Event, ExpectedVersion, Receipt};
pub use ids::IdIndexStats;
pub use ledger::{CheckedBatch, Ledger, LedgerIdentity, PendingAppend};
pub use ledger_verify::record::{Metadata, ProducerSignature};
pub use ledger_verify::{Hash, HashAlg};
pub use namespace::namespace_of;
pub use record::Record;
pub use scan::{ScanConfig, SecretHit, SecretScanner};
pub use signer::{LocalKeySigner, Signer};
