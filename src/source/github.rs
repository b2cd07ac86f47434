//! GitHub's REST API through octocrab: the organisation's (or user's) repositories with full
//! pagination, rate limits and server errors waited out within a bound, and the compare API that tells
//! a fast-forward from a forced update without any local objects. Every request is made with the
//! current token (a GitHub App's renewed before it expires, see `app_token`), and no answer is read
//! past [`MAX_ANSWER_BYTES`] (see `bounded_body`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, StatusCode};
use octocrab::Octocrab;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::git::Credentials;
use crate::refs::ObjectId;

mod app_token;
mod bounded_body;

use app_token::InstallationTokens;
pub use app_token::{TokenError, RENEWAL_MARGIN};
pub use bounded_body::MAX_ANSWER_BYTES;
use bounded_body::{read_bounded, BodyError};

/// How the source is authenticated.
#[derive(Clone)]
pub enum GitHubAuth {
    Anonymous,
    Token(String),
    /// A GitHub App installation; its tokens are obtained at connect time and renewed before they
    /// expire.
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
    #[error(transparent)]
    InstallationToken(#[from] TokenError),
    #[error("GitHub's answer to GET {path} is larger than {limit} bytes, the most a run reads of one answer")]
    AnswerTooLarge { path: String, limit: u64 },
    #[error("GitHub rejected the credentials (HTTP {status}) for GET {path}: {message}")]
    Unauthorized {
        path: String,
        status: u16,
        message: String,
    },
    #[error("the listing gives {repository} the clone URL {url}, {why}: no credentials are sent there, so it is not mirrored")]
    UntrustedCloneUrl {
        repository: String,
        /// Shown without userinfo or query.
        url: String,
        why: String,
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
    #[error("the repository listing failed at page {page} (GET {path}), so it would be incomplete: {source}")]
    ListingPage {
        page: usize,
        path: String,
        #[source]
        source: Box<SourceError>,
    },
    #[error(
        "the repository listing repeats itself: page {page} (GET {path}) is page {earlier} again"
    )]
    PageRepeated {
        page: usize,
        path: String,
        earlier: usize,
    },
    #[error("the repository listing goes on past the {announced} pages its first answer announced: page {page} would be GET {path}")]
    PagesBeyondAnnounced {
        announced: usize,
        page: usize,
        path: String,
    },
    #[error("the repository listing goes on past {MAX_LISTING_PAGES} pages, the most a run reads: page {page} would be GET {path}")]
    TooManyPages { page: usize, path: String },
}

/// The most pages of 100 repositories a listing may have (100 000 repositories): a bound on a
/// listing whose `next` links never end.
pub const MAX_LISTING_PAGES: usize = 1000;

/// What a listing's pages have been so far, to tell a sound pagination from one that loops or runs on.
struct Pagination {
    /// Path and repository names of every page read, in order.
    fetched: Vec<(String, Vec<String>)>,
    /// The number of pages the first answer announced (its `Link: rel="last"`), if it said.
    announced: Option<usize>,
}

impl Pagination {
    fn new() -> Self {
        Pagination {
            fetched: Vec::new(),
            announced: None,
        }
    }

    /// Takes in the page just read from `path`: an error if it repeats an earlier page (same URL, or the
    /// same repositories).
    fn check(&mut self, path: &str, listed: &[SourceRepo]) -> Result<(), SourceError> {
        let page = self.fetched.len() + 1;
        let names: Vec<String> = listed.iter().map(|repo| repo.name.clone()).collect();
        let repeated = self
            .fetched
            .iter()
            .position(|(earlier_path, earlier_names)| {
                earlier_path == path || (!names.is_empty() && *earlier_names == names)
            });
        if let Some(earlier) = repeated {
            return Err(SourceError::PageRepeated {
                page,
                path: path.to_owned(),
                earlier: earlier + 1,
            });
        }
        self.fetched.push((path.to_owned(), names));
        Ok(())
    }

    /// Whether the page at `next` may be read: not a page already read, not past the announced
    /// count, not past the absolute bound.
    fn check_next(&self, next: &str) -> Result<(), SourceError> {
        let page = self.fetched.len() + 1;
        if let Some(earlier) = self.fetched.iter().position(|(path, _)| path == next) {
            return Err(SourceError::PageRepeated {
                page,
                path: next.to_owned(),
                earlier: earlier + 1,
            });
        }
        if let Some(announced) = self.announced.filter(|announced| page > *announced) {
            return Err(SourceError::PagesBeyondAnnounced {
                announced,
                page,
                path: next.to_owned(),
            });
        }
        if page > MAX_LISTING_PAGES {
            return Err(SourceError::TooManyPages {
                page,
                path: next.to_owned(),
            });
        }
        Ok(())
    }
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

/// The credentials a run uses on GitHub's API and for git.
enum Access {
    Anonymous,
    /// A token that does not change during the run (a personal access token, say).
    Token(SecretString),
    /// A GitHub App installation: its tokens are renewed before they expire.
    App(Box<InstallationTokens>),
}

/// A connected GitHub API client for one owner.
pub struct GitHub {
    /// Without credentials of its own: each request is made with the current token.
    crab: Octocrab,
    access: Access,
    api_url: String,
    owner: String,
    retry: RetryPolicy,
}

impl GitHub {
    /// Builds the client; for a GitHub App, obtains a first installation token (one API call), so
    /// that unusable App credentials fail the run at once.
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
        let builder = || {
            Octocrab::builder()
                .base_uri(api_url.as_str())
                .map_err(|err| url_error(err.to_string()))
                .map(|builder| {
                    builder
                        .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
                        .set_connect_timeout(Some(Duration::from_secs(20)))
                        .set_read_timeout(Some(Duration::from_secs(60)))
                })
        };
        let crab = builder()?
            .build()
            .map_err(|err| url_error(err.to_string()))?;
        let access = match auth {
            GitHubAuth::Anonymous => Access::Anonymous,
            GitHubAuth::Token(token) => Access::Token(SecretString::from(token.clone())),
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
                let app = builder()?
                    .app((*app_id).into(), key)
                    .build()
                    .map_err(|err| url_error(err.to_string()))?;
                let tokens = InstallationTokens::new(app, *installation_id);
                tokens.current().await?;
                Access::App(Box::new(tokens))
            }
        };
        Ok(GitHub {
            crab,
            access,
            api_url,
            owner: owner.to_owned(),
            retry: RetryPolicy::default(),
        })
    }

    /// The token to use now: for a GitHub App, renewed first if it is about to expire.
    async fn current_token(&self) -> Result<Option<SecretString>, SourceError> {
        match &self.access {
            Access::Anonymous => Ok(None),
            Access::Token(token) => Ok(Some(token.clone())),
            Access::App(tokens) => Ok(Some(tokens.current().await?)),
        }
    }

    /// Credentials for git at `clone_url` (`x-access-token` + the current token), if authenticated.
    /// They go only to the git host of the API in use ([`trusted_git_host`]) and never over plain
    /// http to a host that is not loopback: a listing that names any other place for `repository`
    /// is refused with [`SourceError::UntrustedCloneUrl`].
    pub async fn git_credentials_for(
        &self,
        repository: &str,
        clone_url: &str,
    ) -> Result<Option<Credentials>, SourceError> {
        let untrusted = |why: String| SourceError::UntrustedCloneUrl {
            repository: repository.to_owned(),
            url: crate::shown_url::shown(clone_url),
            why,
        };
        // A URL that carries its own userinfo or query would show them in every error about it.
        if crate::shown_url::shown(clone_url) != clone_url.trim() {
            return Err(untrusted("which carries userinfo or a query".into()));
        }
        let credentials = self.git_credentials().await?;
        if credentials.is_some() {
            let trusted = trusted_git_host(&self.api_url).unwrap_or_default();
            let host = crate::shown_url::host(clone_url);
            if host.as_deref() != Some(trusted.as_str()) {
                return Err(untrusted(format!(
                    "whose host is not {trusted}, the git host of the GitHub API in use"
                )));
            }
            if !crate::shown_url::may_carry_credentials(clone_url) {
                return Err(untrusted(
                    "which is not https (plain http carries credentials only to loopback hosts)"
                        .into(),
                ));
            }
        }
        Ok(credentials)
    }

    /// Credentials for git over HTTPS (`x-access-token` + the current token), if authenticated.
    /// Asked for right before each git connection: a GitHub App's token is renewed first if it is
    /// about to expire.
    async fn git_credentials(&self) -> Result<Option<Credentials>, SourceError> {
        Ok(self
            .current_token()
            .await?
            .map(|token| token_credentials(token.expose_secret())))
    }

    /// An API client carrying the current token (cheap: the connection pool is shared).
    async fn client(&self) -> Result<Octocrab, SourceError> {
        match self.current_token().await? {
            None => Ok(self.crab.clone()),
            Some(token) => self
                .crab
                .user_access_token(token)
                .map_err(|err| SourceError::ApiUrl {
                    url: self.api_url.clone(),
                    message: describe_octocrab(&err),
                }),
        }
    }

    /// Every repository of the owner: the organisation listing, or the user's when the owner is a user.
    ///
    /// Only a 404 on the first page of the organisation listing means "not an organisation": any error
    /// on a later page, a page that repeats an earlier one, or more pages than the first answer
    /// announced fails the whole listing, so that a run never works from part of it.
    pub async fn list_repositories(&self) -> Result<Vec<SourceRepo>, SourceError> {
        let org = format!("/orgs/{}/repos?type=all&per_page=100", self.owner);
        if let Some(repos) = self.list_pages(&org).await? {
            return Ok(repos);
        }
        let user = format!("/users/{}/repos?type=owner&per_page=100", self.owner);
        self.list_pages(&user)
            .await?
            .ok_or_else(|| SourceError::OwnerNotFound {
                owner: self.owner.clone(),
                api_url: self.api_url.clone(),
            })
    }

    /// Every page of a listing, following `Link: rel="next"`. `None` when its first page answers 404.
    async fn list_pages(&self, first: &str) -> Result<Option<Vec<SourceRepo>>, SourceError> {
        let mut pages = Pagination::new();
        let mut repos: Vec<SourceRepo> = Vec::new();
        let mut path = first.to_owned();
        loop {
            let page = pages.fetched.len() + 1;
            let answer = match self.get(&path).await {
                Err(SourceError::Status { status: 404, .. }) if page == 1 => return Ok(None),
                answer => answer,
            };
            let read = answer.and_then(|(headers, body)| {
                serde_json::from_str::<Vec<SourceRepo>>(&body)
                    .map(|listed| (headers, listed))
                    .map_err(|err| SourceError::Decode {
                        path: path.clone(),
                        message: err.to_string(),
                    })
            });
            let (headers, listed) = match read {
                Ok(read) => read,
                Err(err) if page == 1 => return Err(err),
                Err(err) => {
                    return Err(SourceError::ListingPage {
                        page,
                        path,
                        source: Box::new(err),
                    })
                }
            };
            let next = link(&headers, "next").map(|url| path_of(&url));
            if page == 1 {
                pages.announced = link(&headers, "last").and_then(|url| page_number(&url));
            }
            pages.check(&path, &listed)?;
            for repo in listed {
                // A repository created while the listing is read can move onto the next page and
                // be listed twice; it is mirrored once.
                if !repos.iter().any(|known| known.name == repo.name) {
                    repos.push(repo);
                }
            }
            // Requests stay relative to the API base: octocrab sends App credentials only on those.
            match next {
                Some(next) => {
                    pages.check_next(&next)?;
                    path = next;
                }
                None => return Ok(Some(repos)),
            }
        }
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
            let client = self.client().await?;
            let response = match client._get(path.as_str()).await {
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
            let body = match read_bounded(response, MAX_ANSWER_BYTES).await {
                Ok(body) => body,
                Err(BodyError::TooLarge { limit }) => {
                    return Err(SourceError::AnswerTooLarge { path, limit })
                }
                Err(BodyError::Transport(message)) => {
                    return Err(SourceError::Transport { path, message })
                }
            };
            let body = String::from_utf8(body).map_err(|_| SourceError::Decode {
                path: path.clone(),
                message: "the answer is not UTF-8".into(),
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

/// The host GitHub serves git from, for the API at `api_url`: `github.com` for `api.github.com`;
/// for GitHub Enterprise Server (`https://HOST/api/v3`) and anything else, the API's own host.
pub fn trusted_git_host(api_url: &str) -> Option<String> {
    let host = crate::shown_url::host(api_url)?;
    Some(if host == "api.github.com" {
        "github.com".to_owned()
    } else {
        host
    })
}

fn token_credentials(token: &str) -> Credentials {
    Credentials {
        username: "x-access-token".into(),
        password: token.to_owned(),
    }
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

/// The `page` query parameter of a listing URL.
fn page_number(url: &str) -> Option<usize> {
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("page="))
        .and_then(|value| value.parse().ok())
}

/// The target of the `Link` header's entry with relation `rel` (`next`, `last`, …).
fn link(headers: &HeaderMap, rel: &str) -> Option<String> {
    let link = headers.get(http::header::LINK)?.to_str().ok()?;
    let wanted = format!("rel=\"{rel}\"");
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim().eq_ignore_ascii_case(&wanted))
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
            link(&headers, "next").as_deref(),
            Some("https://api.github.com/organizations/1/repos?page=2")
        );
        assert_eq!(
            link(&headers, "last").and_then(|url| page_number(&url)),
            Some(5)
        );
        headers.insert(
            http::header::LINK,
            "<https://x/?page=1>; rel=\"prev\"".parse().unwrap(),
        );
        assert_eq!(link(&headers, "next"), None);
        assert_eq!(
            page_number("https://x/repos?per_page=100&page=12"),
            Some(12)
        );
        assert_eq!(page_number("https://x/repos?per_page=100"), None);
    }

    fn repos(names: &[&str]) -> Vec<SourceRepo> {
        names
            .iter()
            .map(|name| SourceRepo {
                name: (*name).to_owned(),
                ..SourceRepo::default()
            })
            .collect()
    }

    #[test]
    fn paginations_that_loop_or_run_on_are_refused() {
        let mut pages = Pagination::new();
        pages.announced = Some(3);
        pages
            .check("/orgs/o/repos?page=1", &repos(&["a", "b"]))
            .unwrap();
        pages.check_next("/orgs/o/repos?page=2").unwrap();
        pages
            .check("/orgs/o/repos?page=2", &repos(&["c", "d"]))
            .unwrap();
        let looped = pages.check_next("/orgs/o/repos?page=1").unwrap_err();
        assert!(
            matches!(
                looped,
                SourceError::PageRepeated {
                    page: 3,
                    earlier: 1,
                    ..
                }
            ),
            "{looped}"
        );
        let same_repos = pages
            .check("/orgs/o/repos?page=3&x=1", &repos(&["c", "d"]))
            .unwrap_err();
        assert!(
            matches!(
                same_repos,
                SourceError::PageRepeated {
                    page: 3,
                    earlier: 2,
                    ..
                }
            ),
            "{same_repos}"
        );
        pages.check("/orgs/o/repos?page=3", &repos(&["e"])).unwrap();
        let beyond = pages.check_next("/orgs/o/repos?page=4").unwrap_err();
        assert!(
            matches!(
                beyond,
                SourceError::PagesBeyondAnnounced {
                    announced: 3,
                    page: 4,
                    ..
                }
            ),
            "{beyond}"
        );

        let mut unannounced = Pagination::new();
        for page in 1..=MAX_LISTING_PAGES {
            let name = page.to_string();
            unannounced
                .check(&format!("/x?page={page}"), &repos(&[name.as_str()]))
                .unwrap();
        }
        let endless = unannounced
            .check_next(&format!("/x?page={}", MAX_LISTING_PAGES + 1))
            .unwrap_err();
        assert!(
            matches!(endless, SourceError::TooManyPages { .. }),
            "{endless}"
        );
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

    #[test]
    fn git_credentials_go_only_to_the_api_s_git_host() {
        assert_eq!(
            trusted_git_host("https://api.github.com").as_deref(),
            Some("github.com")
        );
        assert_eq!(
            trusted_git_host("https://GHE.example.com/api/v3").as_deref(),
            Some("ghe.example.com")
        );
        assert_eq!(
            trusted_git_host("http://127.0.0.1:8080").as_deref(),
            Some("127.0.0.1")
        );
    }
}
