//! Errors of the git wire protocol, each carrying the URL (never credentials) it happened at.

use super::answer_limits::{Answer, AnswerLimit};

/// A failure talking git to one endpoint.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{url}: could not connect or authenticate: {message}")]
    Handshake {
        url: String,
        message: String,
        /// The HTTP status the server answered with, when it answered with an error status.
        status: Option<u16>,
    },
    #[error(
        "{url}: the server speaks protocol {version:?}, but protocol v2 is needed to list refs"
    )]
    ProtocolVersion {
        url: String,
        version: gix::protocol::transport::Protocol,
    },
    #[error("{url}: listing refs failed: {message}")]
    ListRefs { url: String, message: String },
    #[error("{url}: the fetch failed: {message}")]
    Fetch { url: String, message: String },
    #[error("{url}: the pack stream broke after {bytes} bytes: {message}")]
    PackStream {
        url: String,
        bytes: u64,
        message: String,
    },
    #[error("{url}: the push failed: {message}")]
    Push { url: String, message: String },
    #[error("{url}: the server could not unpack what was pushed: {message}")]
    Unpack { url: String, message: String },
    #[error("{url}: the report-status answer is malformed: {message}")]
    ReportStatus { url: String, message: String },
    #[error("{url}: the {answer} is over its limit of {limit}")]
    AnswerTooLarge {
        url: String,
        answer: Answer,
        limit: AnswerLimit,
    },
}

impl GitError {
    /// A failed connection or handshake with `url`, keeping the HTTP status the server answered with.
    pub(crate) fn handshake(url: &str, err: &(dyn std::error::Error + 'static)) -> GitError {
        GitError::Handshake {
            url: url.to_owned(),
            message: describe(err),
            status: http_status(err),
        }
    }

    /// Whether the server answered "not found" (HTTP 404) when asked for the repository.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            GitError::Handshake {
                status: Some(404),
                ..
            }
        )
    }
}

/// The HTTP error status somewhere in `err`'s chain of causes, found by the causes' types: the HTTP
/// client's own error, or gix-transport's "authentication required" (401).
fn http_status(err: &(dyn std::error::Error + 'static)) -> Option<u16> {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if let Some(status) = err
            .downcast_ref::<reqwest::Error>()
            .and_then(reqwest::Error::status)
        {
            return Some(status.as_u16());
        }
        if err
            .downcast_ref::<gix::protocol::transport::client::AuthenticationRequired>()
            .is_some()
        {
            return Some(401);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            // io::Error hides its payload from source(): look inside.
            if let Some(inner) = io.get_ref() {
                if let Some(status) = http_status(inner) {
                    return Some(status);
                }
            }
        }
        cause = err.source();
    }
    None
}

/// An error and all its causes on one line (`outer: cause: root cause`), without repeats.
pub(crate) fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
