//! Behaviour tests: one binary, one module per concern (raft-rs style).

/// The `ledgerd` program, as built by this package.
const LEDGERD: &str = env!("CARGO_BIN_EXE_test-ledgerd");
/// The `ledger` CLI, as built by this package.
const LEDGER: &str = env!("CARGO_BIN_EXE_test-ledger");

mod admin;
mod append;
mod auth;
mod auth_cli;
mod bench_cli;
mod bundles;
mod cli;
mod crash;
mod demo;
mod digest_vector;
mod fanout;
mod grpc;
mod grpc_kill;
mod id_index;
mod keys;
mod mtls;
mod producer;
mod projection_cache;
mod projections;
mod proofs;
mod quota;
mod recovery;
mod replay_determinism;
mod replay_kill;
mod rotate_online;
mod secrets;
mod tls;
