//! Behaviour tests: one binary, one module per concern (raft-rs style).

mod append;
mod cli;
mod crash;
mod grpc;
mod grpc_kill;
mod producer;
mod proofs;
mod recovery;
