//! Errors of the git wire protocol, each carrying the URL (never credentials) it happened at.

/// A failure talking git to one endpoint.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{url}: could not connect or authenticate: {message}")]
    Handshake { url: String, message: String },
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
