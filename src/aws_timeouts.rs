//! Time limits on every AWS call (Secrets Manager, CodeCommit, CloudWatch, STS): without them the SDK
//! waits on a connection that accepts and never answers for as long as the peer likes. One setting,
//! `MIRROR_AWS_TIMEOUT`, bounds a whole operation (all its attempts); each attempt gets a third of it,
//! so the SDK's standard three attempts fit, and connecting a few seconds at most.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;

/// `MIRROR_AWS_TIMEOUT`'s default: seconds one AWS operation may take, retries included.
pub const DEFAULT_AWS_OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a TCP (and TLS) connection to an AWS endpoint may take to open.
pub const AWS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The SDK's timeouts for an operation limit: the operation as a whole, each attempt (a third, at
/// least one second), reading any part of an answer (as long as an attempt), and connecting (at most
/// [`AWS_CONNECT_TIMEOUT`], never longer than an attempt).
pub fn timeout_config(operation: Duration) -> TimeoutConfig {
    let attempt = (operation / 3).max(Duration::from_secs(1)).min(operation);
    TimeoutConfig::builder()
        .connect_timeout(AWS_CONNECT_TIMEOUT.min(attempt))
        .read_timeout(attempt)
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_wait_is_bounded_within_the_operation() {
        let config = timeout_config(DEFAULT_AWS_OPERATION_TIMEOUT);
        assert_eq!(config.operation_timeout(), Some(Duration::from_secs(60)));
        assert_eq!(
            config.operation_attempt_timeout(),
            Some(Duration::from_secs(20))
        );
        assert_eq!(config.read_timeout(), Some(Duration::from_secs(20)));
        assert_eq!(config.connect_timeout(), Some(Duration::from_secs(5)));
        let short = timeout_config(Duration::from_secs(2));
        assert_eq!(
            short.operation_attempt_timeout(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(short.connect_timeout(), Some(Duration::from_secs(1)));
    }
}
