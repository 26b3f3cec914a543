//! The client's error type.

use ledger_verify::merkle::ProofError;
use ledger_verify::note::NoteError;
use ledger_verify::record::DecodeError;

/// What can go wrong talking to `ledgerd`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server could not be reached.
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// An event could not be built or sent as given.
    #[error("{field}: {reason}")]
    InvalidInput {
        /// The field, e.g. `payload`.
        field: String,
        /// Why.
        reason: String,
    },
    /// The server returned something that does not check out: a receipt
    /// whose record hash is not the hash of what was sent, a record whose
    /// canonical bytes disagree with its fields, a proof that fails.
    #[error("verification failed: {0}")]
    Verification(String),
    /// A proof did not verify.
    #[error("proof: {0}")]
    Proof(#[from] ProofError),
    /// A checkpoint note did not open.
    #[error("checkpoint: {0}")]
    Note(#[from] NoteError),
    /// Canonical record bytes did not decode.
    #[error("canonical record: {0}")]
    Decode(#[from] DecodeError),
    /// The append stream ended before every request was answered.
    #[error("append stream closed with {0} requests unanswered")]
    StreamClosed(usize),
}

impl ClientError {
    /// The gRPC status code, when the server sent one.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ClientError::Status(status) => Some(status.code()),
            _ => None,
        }
    }
}

/// Shorthand.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
