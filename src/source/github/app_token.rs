//! GitHub App installation tokens, kept with their expiry and renewed before they run out.
//!
//! An installation token lasts an hour (GitHub's `expires_at`). A run, or a warm Lambda, can outlive
//! it, so the token is not obtained once: every API call and every git connection asks
//! [`InstallationTokens::current`] for it, which obtains a new one when less than
//! [`RENEWAL_MARGIN`] is left. Renewals happen one at a time (concurrent repositories wait for the
//! one under way and then share its token). The token is held as a [`SecretString`]: it never
//! appears in `Debug` output, logs or errors.

use std::time::Duration;

use octocrab::Octocrab;
use secrecy::SecretString;
use serde::Deserialize;
use time::OffsetDateTime;

use super::bounded_body::{read_bounded, BodyError, MAX_ANSWER_BYTES};

/// A token with less than this left is renewed before it is used: 10 minutes, so that a token
/// handed to a git connection still holds for the ref listing and the fetch that follows it.
pub const RENEWAL_MARGIN: Duration = Duration::from_secs(10 * 60);

/// Why no installation token could be had. Never carries a credential.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no installation token for installation {installation_id}: GitHub could not be reached: {message}")]
    Transport {
        installation_id: u64,
        message: String,
    },
    #[error("no installation token for installation {installation_id}: GitHub answered HTTP {status}: {message}")]
    Refused {
        installation_id: u64,
        status: u16,
        message: String,
    },
    #[error("no installation token for installation {installation_id}: the answer could not be read: {source}")]
    Body {
        installation_id: u64,
        #[source]
        source: BodyError,
    },
    #[error("no installation token for installation {installation_id}: the answer is not an installation token: {message}")]
    Answer {
        installation_id: u64,
        message: String,
    },
}

/// One installation token and when it stops working.
struct InstallationToken {
    secret: SecretString,
    expires_at: OffsetDateTime,
}

impl InstallationToken {
    /// Whether the token still has more than `margin` to live.
    fn lasts_beyond(&self, margin: Duration) -> bool {
        self.expires_at - OffsetDateTime::now_utc() > margin
    }
}

/// The installation tokens of one GitHub App installation: the current one, renewed on demand.
pub struct InstallationTokens {
    /// Authenticated as the App itself (a JWT signed with its private key, made by octocrab).
    app: Octocrab,
    installation_id: u64,
    current: tokio::sync::Mutex<Option<InstallationToken>>,
}

impl std::fmt::Debug for InstallationTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "InstallationTokens {{ installation_id: {}, token: <redacted> }}",
            self.installation_id
        )
    }
}

/// GitHub's answer to `POST /app/installations/{id}/access_tokens` (the fields used).
#[derive(Deserialize)]
struct AccessTokenAnswer {
    token: String,
    expires_at: String,
}

impl InstallationTokens {
    /// Tokens for `installation_id`, obtained through `app` (an octocrab client with App
    /// credentials). No token is asked for until [`current`](Self::current) is first called.
    pub fn new(app: Octocrab, installation_id: u64) -> Self {
        InstallationTokens {
            app,
            installation_id,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// A token with more than [`RENEWAL_MARGIN`] to live: the current one, or a new one obtained
    /// now. A renewal under way for another caller is waited for, and its token used.
    pub async fn current(&self) -> Result<SecretString, TokenError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current
            .as_ref()
            .filter(|token| token.lasts_beyond(RENEWAL_MARGIN))
        {
            return Ok(token.secret.clone());
        }
        let fresh = self.request().await?;
        let secret = fresh.secret.clone();
        *current = Some(fresh);
        Ok(secret)
    }

    /// Asks GitHub for a new installation token.
    async fn request(&self) -> Result<InstallationToken, TokenError> {
        let installation_id = self.installation_id;
        let path = format!("/app/installations/{installation_id}/access_tokens");
        let response = self
            .app
            ._post(path.as_str(), None::<&()>)
            .await
            .map_err(|err| TokenError::Transport {
                installation_id,
                message: super::describe_octocrab(&err),
            })?;
        let status = response.status();
        let body = read_bounded(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|source| TokenError::Body {
                installation_id,
                source,
            })?;
        let body = String::from_utf8_lossy(&body);
        if !status.is_success() {
            return Err(TokenError::Refused {
                installation_id,
                status: status.as_u16(),
                message: super::github_message(&body),
            });
        }
        let answer: AccessTokenAnswer =
            serde_json::from_str(&body).map_err(|err| TokenError::Answer {
                installation_id,
                // Only where and what kind: serde_json's own text can quote the answer.
                message: format!(
                    "{:?} error at line {} column {}",
                    err.classify(),
                    err.line(),
                    err.column()
                ),
            })?;
        let expires_at = OffsetDateTime::parse(
            &answer.expires_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|err| TokenError::Answer {
            installation_id,
            message: format!("expires_at is not a time: {err}"),
        })?;
        Ok(InstallationToken {
            secret: SecretString::from(answer.token),
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_within_the_margin_are_renewed() {
        let token = |left: Duration| InstallationToken {
            secret: SecretString::from("x".to_owned()),
            expires_at: OffsetDateTime::now_utc() + left,
        };
        assert!(token(Duration::from_secs(3600)).lasts_beyond(RENEWAL_MARGIN));
        assert!(!token(RENEWAL_MARGIN - Duration::from_secs(1)).lasts_beyond(RENEWAL_MARGIN));
        assert!(!token(Duration::ZERO).lasts_beyond(RENEWAL_MARGIN));
    }
}
