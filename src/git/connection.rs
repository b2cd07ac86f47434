//! Opening a smart-HTTP connection to one repository: URL, Basic credentials sent preemptively (no 401
//! round trip, no wasted upload), a time limit on every request, since the HTTP client has no overall
//! deadline of its own, and the stall guard on every answer and request body ([`super::stall`]).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use gix::protocol::transport::client::blocking_io::http;
use gix::protocol::transport::client::TransportWithoutIO;
use gix::protocol::transport::Protocol;

use super::error::describe;

/// How repo-mirror names itself to git servers.
pub(crate) const USER_AGENT: &str = concat!("repo-mirror/", env!("CARGO_PKG_VERSION"));

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
        let handshake_error = |message: String| self.handshake_error(message);
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
        transport
            .configure(&self.http_options())
            .map_err(|err| handshake_error(describe(&err)))?;
        Ok(transport)
    }

    /// The HTTP client on its own, configured as [`Endpoint::connect`] configures a transport's, for
    /// requests made without gix-transport's handshake (see [`super::upload_pack`]).
    pub(crate) fn http_client(&self) -> Result<super::stall::Guarded, super::GitError> {
        let mut client = super::stall::Guarded::new(self.stall.clone(), &self.url);
        http::Http::configure(&mut client, &self.http_options())
            .map_err(|err| self.handshake_error(describe(&err)))?;
        Ok(client)
    }

    /// `Authorization: Basic …` for the credentials, if any.
    pub(crate) fn authorization_header(&self) -> Option<String> {
        use base64::Engine;
        self.credentials.as_ref().map(|credentials| {
            format!(
                "Authorization: Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", credentials.username, credentials.password))
            )
        })
    }

    fn handshake_error(&self, message: String) -> super::GitError {
        super::GitError::Handshake {
            url: self.url.clone(),
            message,
            status: None,
        }
    }

    /// The HTTP options of every connection: TLS settings built once, the deadline on every request,
    /// the user agent.
    fn http_options(&self) -> http::Options {
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
        http::Options {
            user_agent: Some(USER_AGENT.into()),
            backend: Some(Arc::new(Mutex::new(backend))),
            ..Default::default()
        }
    }
}
