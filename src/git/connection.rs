//! Opening a smart-HTTP connection to one repository: URL, Basic credentials sent preemptively (no 401
//! round trip, no wasted upload), a time limit on every request, since the HTTP client has no overall
//! deadline of its own, and the stall guard on every answer and request body ([`super::stall`]).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use gix::protocol::transport::client::blocking_io::http;
use gix::protocol::transport::client::TransportWithoutIO;
use gix::protocol::transport::Protocol;

use super::error::describe;

/// The HTTP transport used for every connection.
pub type HttpTransport = http::Transport<super::stall::Guarded>;

/// Basic-auth credentials. `Debug` shows neither part: a username can carry a secret too (CodeCommit's
/// is the access key id and the session token).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &"<redacted>")
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One repository reachable over smart HTTP.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The repository URL, never with credentials in it.
    pub url: String,
    pub credentials: Option<Credentials>,
    /// Requests still running at this instant fail.
    pub deadline: Option<Instant>,
    /// Transfers in which no byte moves for its timeout fail (and trip it).
    pub stall: super::StallGuard,
}

impl Endpoint {
    pub fn new(url: impl Into<String>, credentials: Option<Credentials>) -> Self {
        Endpoint {
            url: url.into(),
            credentials,
            deadline: None,
            stall: super::StallGuard::default(),
        }
    }

    /// Opens a transport that asks for `protocol`, with credentials and deadline applied.
    pub(crate) fn connect(&self, protocol: Protocol) -> Result<HttpTransport, super::GitError> {
        let handshake_error = |message: String| super::GitError::Handshake {
            url: self.url.clone(),
            message,
            status: None,
        };
        let url = gix::url::parse(gix::bstr::BStr::new(self.url.as_str()))
            .map_err(|err| handshake_error(describe(&err)))?;
        let mut transport = HttpTransport::new_http(
            super::stall::Guarded::new(self.stall.clone(), &self.url),
            url,
            protocol,
            false,
        );
        if let Some(credentials) = &self.credentials {
            transport
                .set_identity(gix::protocol::transport::client::Account {
                    username: credentials.username.clone(),
                    password: credentials.password.clone(),
                    oauth_refresh_token: None,
                })
                .map_err(|err| handshake_error(describe(&err)))?;
        }
        let deadline = self.deadline;
        let backend = http::reqwest::Options {
            configure_client: Some(Box::new(|builder| {
                let tls = super::tls::client_config()
                    .map_err(|message| gix::Error::from_error(std::io::Error::other(message)))?;
                // The default 30 s would cut long transfers; the deadline below bounds every request instead.
                Ok(builder
                    .tls_backend_preconfigured(tls)
                    .timeout(None)
                    .connect_timeout(std::time::Duration::from_secs(20)))
            })),
            configure_request: Some(Box::new(move |request| {
                if let Some(deadline) = deadline {
                    *request.timeout_mut() =
                        Some(deadline.saturating_duration_since(Instant::now()));
                }
                Ok(())
            })),
        };
        let options = http::Options {
            user_agent: Some(concat!("repo-mirror/", env!("CARGO_PKG_VERSION")).into()),
            backend: Some(Arc::new(Mutex::new(backend))),
            ..Default::default()
        };
        transport
            .configure(&options)
            .map_err(|err| handshake_error(describe(&err)))?;
        Ok(transport)
    }
}
