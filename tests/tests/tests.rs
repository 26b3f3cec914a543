//! Behaviour tests: one binary, one module per concern (raft-rs style).

mod append;
mod crash;
mod producer;
mod proofs;
mod recovery;
