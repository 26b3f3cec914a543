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
    #[error("{}: {}", code_name(.0.code()), .0.message())]
    Status(tonic::Status),
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
    /// Writing what the server sent failed locally.
    #[error("writing: {0}")]
    Io(String),
}

// Not `#[from]`: that would make the status the error's source too, and
// error chains would print its message twice.
impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        ClientError::Status(status)
    }
}

/// The canonical name of a status code, as in the gRPC spec and the
/// `.proto` docs (`FAILED_PRECONDITION`).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
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
