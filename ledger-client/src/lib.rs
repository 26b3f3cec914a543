//! `ledger-client`: the typed async client for `ledgerd`.
//!
//! Empty on purpose: the gRPC contract (`proto/ledger/v1`) and the service
//! land together with this client; until then, in-process users call
//! `ledger_core::Ledger` directly. Nothing here pretends to talk to a server.
