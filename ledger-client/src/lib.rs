//! `ledger-client`: a typed async client for `ledgerd`, and the `ledger`
//! command-line tool built on it.
//!
//! Everything the server returns that can be recomputed is checked here:
//! receipts against the events sent ([`check::check_receipt`]), records
//! against their canonical bytes, proofs against signed checkpoints. Retries
//! are safe because appends are idempotent by event id.
//!
//! ```no_run
//! # async fn demo() -> ledger_client::Result<()> {
//! use ledger_client::{Client, proto};
//! let client = Client::connect("http://127.0.0.1:50051").await?;
//! // A server with principals wants an API key (`ledgerd auth` prints it).
//! let client = client.with_api_key(ledger_client::ApiKey::new("lk_...")?);
//! let event = ledger_client::event("service/registry", "ops.health_checked", br#"{"ok":true}"#.to_vec());
//! let response = client
//!     .append(proto::AppendRequest { events: vec![event], ..Default::default() })
//!     .await?;
//! println!("seq {}", response.receipts[0].seq);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod check;
#[cfg(feature = "cli")]
pub mod cli;
mod client;
mod error;
pub mod sign;

pub use client::{
    ApiKey, AppendReceipts, AppendSink, AuthChannel, Client, DEFAULT_SERVER, RetryPolicy, error_chain, is_transient,
    retry_after,
};
pub use error::{ClientError, Result, code_name};
pub use sign::ProducerKey;

/// Generated from `proto/ledger/v1/ledger.proto` (package `ledger.v1`).
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("ledger.v1");

    /// Encoded file descriptor set of the proto, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ledger_descriptor");
}

/// A protobuf timestamp of a `chrono` time.
pub fn timestamp(time: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

/// A JSON event with a fresh UUIDv7 id, occurring now.
pub fn event(stream: impl Into<String>, event_type: impl Into<String>, payload: Vec<u8>) -> proto::Event {
    proto::Event {
        id: uuid::Uuid::now_v7().to_string(),
        stream: stream.into(),
        r#type: event_type.into(),
        occurred_at: Some(timestamp(chrono::Utc::now())),
        payload,
        content_type: String::new(),
        metadata: None,
        signature: None,
    }
}
