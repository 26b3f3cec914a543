//! `ledgerd`, the evidence ledger service, as a library: the binary is a
//! thin command line over [`server::run`], which the tests call too.
//!
//! Data flow: a gRPC request is converted ([`convert`]) into a
//! `ledger_core` request, served by the one open [`ledger_core::Ledger`],
//! and every error on the way becomes a status in one place ([`status`]).
//! Before any of it, the [`auth`] layer turns the caller's API key into a
//! principal, whose grants each handler checks against the namespaces it
//! touches.

#![deny(missing_docs)]

pub mod admin;
mod append_stream;
pub mod auth;
pub mod bundle_store;
mod bundles;
pub mod cli;
pub mod config;
pub mod convert;
pub mod keys;
mod limits;
mod projections;
pub mod quota;
pub mod server;
mod service;
pub mod status;
mod subscribe;
pub mod telemetry;
pub mod vocab;

pub use config::{ServeArgs, ServerConfig};
pub use server::{ServerError, run, serve};
pub use service::BLOCKING_CHECK_BYTES;
