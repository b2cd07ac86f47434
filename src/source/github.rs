//! GitHub's REST API through octocrab: the organisation's (or user's) repositories with full
//! pagination, rate limits and server errors waited out within a bound, and the compare API that tells
//! a fast-forward from a forced update without any local objects.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, StatusCode};
use octocrab::Octocrab;
use serde::Deserialize;

use crate::git::Credentials;
use crate::refs::ObjectId;

/// How the source is authenticated.
#[derive(Clone)]
pub enum GitHubAuth {
    Anonymous,
    Token(String),
    /// A GitHub App installation; its token is obtained at connect time.
    App {
        app_id: u64,
        installation_id: u64,
        private_key: String,
    },
}

impl std::fmt::Debug for GitHubAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitHubAuth::Anonymous => f.write_str("Anonymous"),
            GitHubAuth::Token(_) => f.write_str("Token(<redacted>)"),
            GitHubAuth::App {
                app_id,
                installation_id,
                ..
            } => {
                write!(f, "App {{ app_id: {app_id}, installation_id: {installation_id}, private_key: <redacted> }}")
            }
        }
    }
}

/// A repository as listed by GitHub (the fields the mirror uses).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct SourceRepo {
    pub name: String,
    #[serde(default)]
    pub full_name: String,
    #[serde(default)]
    pub clone_url: String,
    #[serde(default)]
    pub html_url: String,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub fork: bool,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub topics: Vec<String>,
    #[serde(default)]
    pub pushed_at: Option<String>,
}

/// A failure talking to GitHub's API. Never carries a credential.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("GitHub API URL {url:?} is not usable: {message}")]
    ApiUrl { url: String, message: String },
    #[error("GitHub App credentials are not usable: {0}")]
    App(String),
    #[error("GitHub rejected the credentials (HTTP {status}) for GET {path}: {message}")]
    Unauthorized {
        path: String,
        status: u16,
        message: String,
    },
    #[error("GitHub organisation or user {owner:?} was not found at {api_url}")]
    OwnerNotFound { owner: String, api_url: String },
    #[error("GitHub rate limit for GET {path}: {message}")]
    RateLimited { path: String, message: String },
    #[error("GitHub answered HTTP {status} for GET {path}: {message}")]
    Status {
        path: String,
        status: u16,
        message: String,
    },
    #[error("GitHub could not be reached for GET {path}: {message}")]
    Transport { path: String, message: String },
    #[error("GitHub's answer to GET {path} could not be read: {message}")]
    Decode { path: String, message: String },
}

/// How long a run waits for GitHub at most, per request, before failing.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_backoff: Duration,
    /// The longest single wait for a rate limit to reset.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(120),
        }
    }
}

/// A connected GitHub API client for one owner.
pub struct GitHub {
    crab: Octocrab,
    api_url: String,
    owner: String,
    retry: RetryPolicy,
    git_credentials: Option<Credentials>,
}

impl GitHub {
    /// Builds the client; for a GitHub App, obtains an installation token (one API call).
    pub async fn connect(
        api_url: &str,
        owner: &str,
        auth: &GitHubAuth,
    ) -> Result<Self, SourceError> {
        let api_url = api_url.trim_end_matches('/').to_owned();
        let url_error = |message: String| SourceError::ApiUrl {
            url: api_url.clone(),
            message,
        };
        let builder = Octocrab::builder()
            .base_uri(api_url.as_str())
            .map_err(|err| url_error(err.to_string()))?
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(20)))
            .set_read_timeout(Some(Duration::from_secs(60)));
        let (crab, git_credentials) = match auth {
            GitHubAuth::Anonymous => (
                builder.build().map_err(|err| url_error(err.to_string()))?,
                None,
            ),
            GitHubAuth::Token(token) => {
                let crab = builder
                    .personal_token(token.clone())
                    .build()
                    .map_err(|err| url_error(err.to_string()))?;
                (crab, Some(token_credentials(token)))
            }
            GitHubAuth::App {
                app_id,
                installation_id,
                private_key,
            } => {
                let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key.as_bytes()).map_err(
                    |_| {
                        SourceError::App(
                            "github_app_private_key is not an RSA private key in PEM form".into(),
                        )
                    },
                )?;
                let app = builder
                    .app((*app_id).into(), key)
                    .build()
                    .map_err(|err| url_error(err.to_string()))?;
                let (crab, token) = app
                    .installation_and_token((*installation_id).into())
                    .await
                    .map_err(|err| {
                        SourceError::App(format!(
                            "no installation token for installation {installation_id}: {}",
                            describe_octocrab(&err)
                        ))
                    })?;
                let token = secrecy_expose(&token);
                (crab, Some(token_credentials(&token)))
            }
        };
        Ok(GitHub {
            crab,
            api_url,
            owner: owner.to_owned(),
            retry: RetryPolicy::default(),
            git_credentials,
        })
    }

    /// Credentials for git over HTTPS (`x-access-token` + token), if authenticated.
    pub fn git_credentials(&self) -> Option<Credentials> {
        self.git_credentials.clone()
    }

    /// Every repository of the owner: the organisation listing, or the user's when the owner is a user.
    pub async fn list_repositories(&self) -> Result<Vec<SourceRepo>, SourceError> {
        match self
            .list_pages(&format!("/orgs/{}/repos?type=all&per_page=100", self.owner))
            .await
        {
            Err(SourceError::Status { status: 404, .. }) => {}
            other => return other,
        }
        match self
            .list_pages(&format!(
                "/users/{}/repos?type=owner&per_page=100",
                self.owner
            ))
            .await
        {
            Err(SourceError::Status { status: 404, .. }) => Err(SourceError::OwnerNotFound {
                owner: self.owner.clone(),
                api_url: self.api_url.clone(),
            }),
            other => other,
        }
    }

    async fn list_pages(&self, first: &str) -> Result<Vec<SourceRepo>, SourceError> {
        let mut repos = Vec::new();
        let mut next = Some(first.to_owned());
        while let Some(path) = next.take() {
            let (headers, body) = self.get(&path).await?;
            let page: Vec<SourceRepo> =
                serde_json::from_str(&body).map_err(|err| SourceError::Decode {
                    path: path.clone(),
                    message: err.to_string(),
                })?;
            repos.extend(page);
            // Requests stay relative to the API base: octocrab sends App credentials only on those.
            next = next_link(&headers).map(|url| path_of(&url));
        }
        Ok(repos)
    }

    /// Whether `base` is an ancestor of (or equal to) `head` in `full_name`, by the compare API.
    /// `Some(false)` when either commit is unknown to GitHub (e.g. force-pushed away and collected):
    /// then the old value cannot be in the new history. `None` when GitHub could not answer.
    pub async fn is_ancestor(
        &self,
        full_name: &str,
        base: ObjectId,
        head: ObjectId,
    ) -> Option<bool> {
        #[derive(Deserialize)]
        struct Compare {
            status: String,
        }
        match self
            .get(&format!("/repos/{full_name}/compare/{base}...{head}"))
            .await
        {
            Ok((_, body)) => {
                let compare: Compare = serde_json::from_str(&body).ok()?;
                Some(matches!(compare.status.as_str(), "ahead" | "identical"))
            }
            Err(SourceError::Status { status: 404, .. }) => Some(false),
            Err(_) => None,
        }
    }

    /// One GET of `path` (and query) under the API base, with retries: rate limits are waited out when
    /// GitHub says when (within the bound), server errors and transport failures are retried with
    /// exponential backoff.
    async fn get(&self, path: &str) -> Result<(HeaderMap, String), SourceError> {
        let path = path.to_owned();
        let mut backoff = self.retry.first_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.retry.attempts;
            let response = match self.crab._get(path.as_str()).await {
                Ok(response) => response,
                Err(err) => {
                    if last {
                        return Err(SourceError::Transport {
                            path,
                            message: describe_octocrab(&err),
                        });
                    }
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    continue;
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let body =
                self.crab
                    .body_to_string(response)
                    .await
                    .map_err(|err| SourceError::Transport {
                        path: path.clone(),
                        message: describe_octocrab(&err),
                    })?;
            if status.is_success() {
                return Ok((headers, body));
            }
            let message = github_message(&body);
            match status {
                StatusCode::UNAUTHORIZED => {
                    return Err(SourceError::Unauthorized {
                        path,
                        status: status.as_u16(),
                        message,
                    });
                }
                StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS => {
                    let Some(wait) = rate_limit_wait(&headers, status) else {
                        return Err(SourceError::Status {
                            path,
                            status: status.as_u16(),
                            message,
                        });
                    };
                    if wait > self.retry.max_wait || last {
                        return Err(SourceError::RateLimited {
                            path,
                            message: format!(
                                "{message}; GitHub asks to wait {} s, more than this run waits",
                                wait.as_secs()
                            ),
                        });
                    }
                    tokio::time::sleep(wait).await;
                }
                status if status.is_server_error() && !last => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                status => {
                    return Err(SourceError::Status {
                        path,
                        status: status.as_u16(),
                        message,
                    })
                }
            }
        }
    }
}

fn token_credentials(token: &str) -> Credentials {
    Credentials {
        username: "x-access-token".into(),
        password: token.to_owned(),
    }
}

fn secrecy_expose(token: &secrecy::SecretString) -> String {
    use secrecy::ExposeSecret;
    token.expose_secret().to_owned()
}

/// The path and query of a URL (what is requested relative to the API base).
fn path_of(url: &str) -> String {
    match url
        .find("://")
        .and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j))
    {
        Some(start) => url[start..].to_owned(),
        None => url.to_owned(),
    }
}

/// GitHub's `message` field, or the start of a non-JSON body.
fn github_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    match serde_json::from_str::<Message>(body) {
        Ok(m) => m.message,
        Err(_) => body.chars().take(200).collect::<String>().trim().to_owned(),
    }
}

/// How long GitHub asks us to wait, if this is a rate-limit answer: `Retry-After`, or the reset time when
/// no requests remain. A 429 without either waits a minute, as GitHub's documentation advises.
fn rate_limit_wait(headers: &HeaderMap, status: StatusCode) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(seconds) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(seconds));
    }
    if header("x-ratelimit-remaining") == Some("0") {
        let reset = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok())?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        return Some(Duration::from_secs(reset.saturating_sub(now) + 1));
    }
    (status == StatusCode::TOO_MANY_REQUESTS).then(|| Duration::from_secs(60))
}

/// The `rel="next"` target of a `Link` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(http::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim().eq_ignore_ascii_case("rel=\"next\""))
            .then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
    })
}

/// An octocrab error as one line, without the request's headers (which hold the token).
fn describe_octocrab(err: &octocrab::Error) -> String {
    match err {
        octocrab::Error::GitHub { source, .. } => {
            format!("HTTP {}: {}", source.status_code, source.message)
        }
        other => {
            let text = other.to_string();
            text.lines().next().unwrap_or_default().to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_give_the_next_page() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::LINK,
            "<https://api.github.com/organizations/1/repos?page=2>; rel=\"next\", <https://api.github.com/organizations/1/repos?page=5>; rel=\"last\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("https://api.github.com/organizations/1/repos?page=2")
        );
        headers.insert(
            http::header::LINK,
            "<https://x/?page=1>; rel=\"prev\"".parse().unwrap(),
        );
        assert_eq!(next_link(&headers), None);
    }

    #[test]
    fn rate_limit_answers_say_how_long_to_wait() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(
            rate_limit_wait(&headers, StatusCode::FORBIDDEN),
            Some(Duration::from_secs(7))
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 30;
        headers.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        let wait = rate_limit_wait(&headers, StatusCode::FORBIDDEN).unwrap();
        assert!(
            wait >= Duration::from_secs(29) && wait <= Duration::from_secs(32),
            "{wait:?}"
        );
        assert_eq!(
            rate_limit_wait(&HeaderMap::new(), StatusCode::FORBIDDEN),
            None,
            "a plain 403 is no rate limit"
        );
        assert_eq!(
            rate_limit_wait(&HeaderMap::new(), StatusCode::TOO_MANY_REQUESTS),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn messages_are_read_from_github_answers() {
        assert_eq!(
            github_message(r#"{"message":"Bad credentials","documentation_url":"x"}"#),
            "Bad credentials"
        );
        assert_eq!(github_message("<html>oops</html>"), "<html>oops</html>");
        assert_eq!(
            path_of("https://api.github.com/orgs/x/repos?page=2"),
            "/orgs/x/repos?page=2"
        );
    }
}
