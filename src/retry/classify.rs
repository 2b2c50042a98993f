//! Which failures are worth another attempt. Kept apart from the loop so the rules can be
//! read (and tested) in one place.

use crate::Error;

/// How a failure should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryKind {
    /// The service asked to slow down (throttling, provisioned throughput, request limit).
    Throttled,
    /// A server-side or transient fault (5xx, internal errors, service unavailable).
    ServerError,
    /// The request may not have reached the service, or the answer was lost (connection
    /// failures, timeouts, broken responses).
    Transport,
    /// Retrying cannot help: a failed condition, invalid input, access denied, a missing table.
    NotRetryable,
}

impl RetryKind {
    /// `true` for the kinds that are retried.
    pub fn is_retryable(self) -> bool {
        !matches!(self, RetryKind::NotRetryable)
    }
}

const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
];

const SERVER: &[&str] = &[
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "TransactionInProgressException",
];

/// Classifies an error.
///
/// Retried: throttling (`ThrottlingException`, `ProvisionedThroughputExceededException`,
/// `RequestLimitExceeded`), server errors (`InternalServerError`, 5xx), transport errors
/// (dispatch failures, timeouts, unreadable responses). Everything else — failed conditions,
/// validation errors, access denied, missing tables, version conflicts — fails at once.
pub fn classify(error: &Error) -> RetryKind {
    let Error::Sdk { code, status, .. } = error else {
        return RetryKind::NotRetryable;
    };
    match code.as_deref() {
        Some(c) if THROTTLING.contains(&c) => RetryKind::Throttled,
        _ if status.is_some_and(|s| s >= 500) => RetryKind::ServerError,
        Some(c) if THROTTLING.contains(&c) => RetryKind::Throttled,
        Some(c) if SERVER.contains(&c) => RetryKind::ServerError,
        Some("DispatchFailure" | "TimeoutError" | "ResponseError") => RetryKind::Transport,
        Some(c) if c.starts_with("Http5") => RetryKind::ServerError,
        _ => RetryKind::NotRetryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdk(code: &str) -> Error {
        Error::Sdk {
            operation: "GetItem",
            table: "t".into(),
            code: Some(code.into()),
            status: None,
            source: "x".into(),
        }
    }

    #[test]
    fn throttling_server_and_transport_are_retried() {
        assert_eq!(classify(&sdk("ThrottlingException")), RetryKind::Throttled);
        assert_eq!(
            classify(&sdk("ProvisionedThroughputExceededException")),
            RetryKind::Throttled
        );
        assert_eq!(classify(&sdk("RequestLimitExceeded")), RetryKind::Throttled);
        assert_eq!(
            classify(&sdk("InternalServerError")),
            RetryKind::ServerError
        );
        assert_eq!(classify(&sdk("Http503")), RetryKind::ServerError);
        assert_eq!(classify(&sdk("DispatchFailure")), RetryKind::Transport);
    }

    #[test]
    fn client_errors_are_not() {
        for code in [
            "ValidationException",
            "AccessDeniedException",
            "ResourceNotFoundException",
            "ConditionalCheckFailedException",
        ] {
            assert_eq!(classify(&sdk(code)), RetryKind::NotRetryable, "{code}");
        }
        let cond = Error::ConditionFailed {
            operation: "PutItem",
            table: "t".into(),
            current: None,
        };
        assert!(!classify(&cond).is_retryable());
        let v = Error::validation("E", "a", "bad");
        assert!(!classify(&v).is_retryable());
    }
}
