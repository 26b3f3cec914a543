//! The one place where ledger errors become gRPC status codes.
//!
//! Client-caused errors say which field or limit, in the words of the
//! `.proto` (`events[3].payload`, `max_batch_events`); server-side failures
//! are logged with their detail and returned as `INTERNAL`/`DATA_LOSS`
//! without leaking paths.

use ledger_core::LedgerError;
use tonic::{Code, Status};

/// Maps a ledger error to the status a client sees.
pub fn status(err: LedgerError) -> Status {
    let code = code(&err);
    let message = match &err {
        LedgerError::InvalidEvent {
            index,
            event_id,
            field,
            reason,
        } => format!("events[{index}].{field}: {reason} (event {event_id})"),
        LedgerError::InvalidRequest { field, reason } => format!("{field}: {reason}"),
        LedgerError::PayloadTooLarge {
            index,
            event_id,
            size,
            limit,
        } => format!("events[{index}].payload: {size} bytes exceeds max_payload_bytes ({limit}) (event {event_id})"),
        LedgerError::BatchTooLarge { count, limit } => {
            format!("events: {count} events exceeds max_batch_events ({limit})")
        }
        LedgerError::Io { .. }
        | LedgerError::Store(_)
        | LedgerError::Signer(_)
        | LedgerError::BadKeyFile { .. }
        | LedgerError::BadLedgerDir { .. }
        | LedgerError::Corrupt { .. } => {
            tracing::error!(error = %err, "request failed on a server-side error");
            "server-side storage error (logged by the server)".to_string()
        }
        other => other.to_string(),
    };
    Status::new(code, message)
}

/// The status code of a ledger error.
pub fn code(err: &LedgerError) -> Code {
    match err {
        LedgerError::InvalidEvent { .. }
        | LedgerError::InvalidRequest { .. }
        | LedgerError::DuplicateIdInBatch { .. }
        | LedgerError::UnknownProducerKey { .. }
        | LedgerError::BadProducerSignature { .. }
        | LedgerError::SecretDetected(_)
        | LedgerError::Proof(_) => Code::InvalidArgument,
        LedgerError::PayloadTooLarge { .. } | LedgerError::BatchTooLarge { .. } => Code::ResourceExhausted,
        LedgerError::WrongExpectedVersion { .. } => Code::FailedPrecondition,
        LedgerError::IdConflict { .. } | LedgerError::PartialDuplicate { .. } => Code::AlreadyExists,
        LedgerError::OutOfRange { .. } => Code::OutOfRange,
        LedgerError::Poisoned(_) | LedgerError::Closed => Code::Unavailable,
        LedgerError::Corrupt { .. } => Code::DataLoss,
        _ => Code::Internal,
    }
}

/// Maps a projection error to the status a client sees.
pub fn projection_status(err: ledger_core::projection::ProjectionError) -> Status {
    use ledger_core::projection::ProjectionError as E;
    match err {
        E::Ledger(err) => status(err),
        E::Unknown(name) => Status::not_found(format!("name: no projection called {name:?}")),
        E::NotFound(what) => Status::not_found(format!("{what} not found")),
        E::InvalidQuery { field, reason } => Status::invalid_argument(format!("{field}: {reason}")),
        E::ReplayRunning(name) => Status::failed_precondition(format!("projection {name:?} is already replaying")),
        E::BeyondLog { seq, len } => {
            Status::out_of_range(format!("as_of.seq: {seq} is beyond the log, which holds {len} records"))
        }
        E::Stopped => Status::unavailable("the projection engine is stopped"),
        other => {
            tracing::error!(error = %other, "projection request failed on a server-side error");
            Status::internal("server-side projection error (logged by the server)")
        }
    }
}

#[cfg(test)]
mod tests {
    use ledger_core::ExpectedVersion;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn client_errors_name_the_field_or_limit() {
        let id = Uuid::nil();
        let s = status(LedgerError::InvalidEvent {
            index: 2,
            event_id: id,
            field: "stream",
            reason: "must not be empty".to_string(),
        });
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(
            s.message().starts_with("events[2].stream: must not be empty"),
            "{}",
            s.message()
        );
        let s = status(LedgerError::PayloadTooLarge {
            index: 0,
            event_id: id,
            size: 2_000_000,
            limit: 1_048_576,
        });
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(s.message().contains("max_payload_bytes (1048576)"), "{}", s.message());
        let s = status(LedgerError::BatchTooLarge { count: 11, limit: 10 });
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(s.message().contains("max_batch_events (10)"));
        let s = status(LedgerError::WrongExpectedVersion {
            stream: "s".to_string(),
            expected: ExpectedVersion::Exact(3),
            actual: Some(5),
        });
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(
            status(LedgerError::IdConflict { event_id: id, seq: 4 }).code(),
            Code::AlreadyExists
        );
        assert_eq!(status(LedgerError::Poisoned("fsync".into())).code(), Code::Unavailable);
    }

    #[test]
    fn secret_hits_are_invalid_argument_naming_event_path_and_rule() {
        let id = Uuid::nil();
        let s = status(LedgerError::SecretDetected(ledger_core::SecretHit {
            index: 1,
            event_id: id,
            field_path: "payload.db.password".to_string(),
            rule: ledger_core::scan::Rule::HighEntropySecret,
            in_key: false,
        }));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(
            s.message(),
            format!(
                "events[1] (id {id}): payload.db.password matches secret rule high-entropy-secret; \
                 remove the credential (the value is not logged)"
            )
        );
    }

    #[test]
    fn server_errors_do_not_leak_paths() {
        let s = status(LedgerError::Io {
            context: "writing /secret/path/log/00000001.seg".to_string(),
            source: std::io::Error::other("disk full"),
        });
        assert_eq!(s.code(), Code::Internal);
        assert!(!s.message().contains("/secret"));
    }
}
