//! `GitHubFake`: an in-process HTTP fake of the parts of GitHub's REST API that repo-mirror uses,
//! shaped like the real thing, for integration tests.
//!
//! It serves, on a `wiremock` server bound to 127.0.0.1:
//!
//! * `GET /orgs/{org}/repos` and `GET /users/{login}/repos`, paginated exactly like GitHub
//!   (`per_page` default 30, max 100; a `Link` header with `next`/`last`/`first`/`prev`; no `Link`
//!   header when one page holds everything). `/orgs/…` answers 404 for a user login, as GitHub does.
//!   `/organizations/{id}/repos` and `/user/{id}/repos` (the URLs GitHub itself puts in `Link`) are
//!   served too.
//! * `GET /repos/{owner}/{repo}`: the full repository object.
//! * `GET /repos/{owner}/{repo}/compare/{base}...{head}`: computed with the real `git` CLI against
//!   the bare repository in [`FakeRepo::git_dir`].
//! * `GET /orgs/{org}`, `GET /users/{login}` and `GET /rate_limit`.
//! * Anything else: 404 `{"message":"Not Found",…}`.
//!
//! Every answer carries GitHub's headers (`content-type: application/json; charset=utf-8`,
//! `x-ratelimit-*`, `x-github-request-id`, …). Tests can swap the listing between runs
//! ([`GitHubFake::set_repos`]), demand a token ([`GitHubFake::require_token`]), inject failures
//! ([`GitHubFake::fail_next`], or on one page of the listing only: [`GitHubFake::fail_listing_page`]),
//! serve a GitHub App installation ([`GitHubFake::enable_app`]) whose tokens can be made short-lived
//! ([`GitHubFake::issue_short_lived_tokens`]) and judged by a git server too
//! ([`GitHubFake::git_auth`]),
//! make the listing's pagination misbehave ([`GitHubFake::set_listing_quirk`]) and inspect what was
//! asked ([`GitHubFake::requests`]). As on GitHub, `/users/{org}/repos` lists only an organisation's
//! public repositories.
//!
//! Order of handling for each request: it is recorded, then a queued failure (if any) is served,
//! then a failure queued for that listing page, then the token is checked, then the request is
//! routed.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::git_server::Auth;

/// Whether the fake owner is an organisation or a user account.
#[allow(dead_code)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerKind {
    Org,
    User,
}

/// One repository of the fake owner.
#[allow(dead_code)]
#[derive(Clone, Debug)]
pub struct FakeRepo {
    pub name: String,
    pub fork: bool,
    pub archived: bool,
    pub disabled: bool,
    pub topics: Vec<String>,
    pub default_branch: String,
    /// e.g. `http://127.0.0.1:PORT/NAME.git` (a real git server elsewhere in the tests).
    pub clone_url: String,
    pub description: Option<String>,
    /// RFC 3339, e.g. `"2026-11-20T10:00:00Z"`.
    pub pushed_at: String,
    pub size: u64,
    /// `"public"`, `"private"` or `"internal"`.
    pub visibility: String,
    /// Path of the bare repository on disk backing this repo, used to answer the compare API with
    /// real git.
    pub git_dir: Option<PathBuf>,
}

#[allow(dead_code)]
impl FakeRepo {
    /// A public, non-fork, non-archived repository with default branch `main`.
    pub fn new(name: &str, clone_url: &str) -> FakeRepo {
        FakeRepo {
            name: name.to_string(),
            fork: false,
            archived: false,
            disabled: false,
            topics: Vec::new(),
            default_branch: "main".to_string(),
            clone_url: clone_url.to_string(),
            description: None,
            pushed_at: "2026-11-20T10:00:00Z".to_string(),
            size: 0,
            visibility: "public".to_string(),
            git_dir: None,
        }
    }

    /// Builder-style helper: set `git_dir`.
    pub fn with_git_dir(mut self, git_dir: impl Into<PathBuf>) -> FakeRepo {
        self.git_dir = Some(git_dir.into());
        self
    }
}

/// A failure that [`GitHubFake::fail_next`] serves instead of the normal answer.
#[allow(dead_code)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// 401 `{"message":"Bad credentials",…}`.
    Unauthorized,
    /// Primary rate limit: 403 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` = now + n.
    RateLimited { reset_in_secs: u64 },
    /// Secondary rate limit: 429 with `retry-after: n` (remaining quota is NOT zero).
    SecondaryRateLimit { retry_after_secs: u64 },
    /// Secondary rate limit as GitHub also serves it: 403 with `retry-after: n`.
    SecondaryRateLimitForbidden { retry_after_secs: u64 },
    /// 5xx. 502 and 503 come with an HTML body (as GitHub's front end sends them), others JSON.
    ServerError(u16),
    /// 404 `{"message":"Not Found",…}`.
    NotFound,
    /// A 5xx as [`Failure::ServerError`], answered only after `delay` (a front end timing out).
    SlowServerError { status: u16, delay: Duration },
}

/// A way the repository listing's pagination goes wrong (see [`GitHubFake::set_listing_quirk`]).
/// Bodies and `Link` headers stay GitHub-shaped; only where they lead changes.
#[allow(dead_code)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListingQuirk {
    /// Page `on_page`'s `rel="next"` link leads back to page `to_page` (a loop).
    NextLoopsTo { on_page: usize, to_page: usize },
    /// Page `page` serves the repositories of page `serves` (a different URL, the same content).
    RepeatsPage { page: usize, serves: usize },
    /// Every `rel="last"` link names page `last`, fewer than there are; `next` links go on to the
    /// real end.
    LastUnderstated { last: usize },
}

/// One recorded request: (method, path?query, Authorization header value).
pub type RecordedRequest = (String, String, Option<String>);

struct State {
    owner: String,
    kind: OwnerKind,
    repos: Vec<FakeRepo>,
    token: Option<String>,
    app: Option<AppInstallation>,
    /// How long installation tokens issued from now on live; `None`: the app's fixed token, for
    /// an hour.
    token_lifetime: Option<Duration>,
    /// Every installation token issued, in order.
    issued: Vec<IssuedToken>,
    failures: VecDeque<(usize, Failure)>,
    /// Failures for requests of one listing page: (page, failures still to serve, in order).
    page_failures: Vec<(usize, VecDeque<Failure>)>,
    listing_quirk: Option<ListingQuirk>,
    requests: Vec<RecordedRequest>,
    canonical_links: bool,
    used_authenticated: u64,
    used_anonymous: u64,
    reset_at: u64,
    request_serial: u64,
    /// How long every compare answer is held back (see [`GitHubFake::delay_compare`]).
    compare_delay: Option<std::time::Duration>,
}

/// The fake. Dropping it shuts the server down.
#[allow(dead_code)]
pub struct GitHubFake {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

#[allow(dead_code)]
impl GitHubFake {
    /// Start a fake serving `owner` (an org or a user) with these repositories.
    pub async fn start(owner: &str, kind: OwnerKind, repos: Vec<FakeRepo>) -> GitHubFake {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State {
            owner: owner.to_string(),
            kind,
            repos,
            token: None,
            app: None,
            token_lifetime: None,
            issued: Vec::new(),
            failures: VecDeque::new(),
            page_failures: Vec::new(),
            listing_quirk: None,
            requests: Vec::new(),
            canonical_links: false,
            used_authenticated: 0,
            used_anonymous: 0,
            reset_at: now_epoch() + 3600,
            request_serial: 0,
            compare_delay: None,
        }));
        Mock::given(any())
            .respond_with(Responder {
                base: server.uri(),
                state: Arc::clone(&state),
            })
            .mount(&server)
            .await;
        GitHubFake { server, state }
    }

    /// Base URL, e.g. `http://127.0.0.1:PORT` (no trailing slash).
    pub fn api_url(&self) -> String {
        self.server.uri()
    }

    /// The underlying wiremock server, for tests that want to mount extra mocks (they must be
    /// mounted with a higher priority than the fake's catch-all, i.e. `.with_priority(1)`).
    pub fn server(&self) -> &MockServer {
        &self.server
    }

    /// Replace the repository listing.
    pub fn set_repos(&self, repos: Vec<FakeRepo>) {
        self.lock().repos = repos;
    }

    /// The current repository listing.
    pub fn repos(&self) -> Vec<FakeRepo> {
        self.lock().repos.clone()
    }

    /// From now on, requests without `Authorization: Bearer <token>` or `token <token>` get
    /// 401 Bad credentials. Calling it again replaces the token.
    pub fn require_token(&self, token: &str) {
        self.lock().token = Some(token.to_string());
    }

    /// Serves a GitHub App installation: `POST /app/installations/{installation_id}/access_tokens`
    /// with a JWT signed by the app's key (RS256, `iss` = the app id) answers `token`.
    pub fn enable_app(&self, app_id: u64, installation_id: u64, public_key_pem: &str, token: &str) {
        self.lock().app = Some(AppInstallation {
            app_id,
            installation_id,
            public_key_pem: public_key_pem.to_string(),
            token: token.to_string(),
        });
    }

    /// From now on each installation token request is answered with a new token (`ghs_…`) whose
    /// `expires_at` is `lifetime` from now (whole seconds, as GitHub writes it). Such a token is
    /// accepted, on the API and by [`git_auth`](Self::git_auth), until then and refused after, with
    /// GitHub's 401 `Bad credentials` on the API.
    pub fn issue_short_lived_tokens(&self, lifetime: Duration) {
        self.lock().token_lifetime = Some(lifetime);
    }

    /// Every installation token issued so far, in order (fixed and short-lived ones alike).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.lock()
            .issued
            .iter()
            .map(|issued| issued.token.clone())
            .collect()
    }

    /// Whether `token` is accepted right now: the token set by
    /// [`require_token`](Self::require_token), or an installation token issued and not expired.
    pub fn accepts(&self, token: &str) -> bool {
        accepts(&self.lock(), token)
    }

    /// A git server [`Auth`] that accepts `x-access-token` with whatever token this fake accepts at
    /// the moment of the request (see [`accepts`](Self::accepts)), as github.com does for git over
    /// HTTPS.
    pub fn git_auth(&self) -> Auth {
        let state = Arc::clone(&self.state);
        Auth::Custom(Arc::new(move |user, password, _| {
            user == "x-access-token" && accepts(&lock(&state), password)
        }))
    }

    /// From now on every compare answer is sent only after `delay` (`None`: at once), as from an API
    /// that has stopped answering.
    pub fn delay_compare(&self, delay: Option<std::time::Duration>) {
        self.lock().compare_delay = delay;
    }

    /// Undo [`require_token`](Self::require_token).
    pub fn allow_anonymous(&self) {
        self.lock().token = None;
    }

    /// The next `count` requests (any endpoint) fail this way, then normal service resumes.
    /// Calls queue up: `fail_next(1, ServerError(502)); fail_next(2, NotFound)` fails the next
    /// request with 502 and the two after it with 404.
    pub fn fail_next(&self, count: usize, failure: Failure) {
        if count > 0 {
            self.lock().failures.push_back((count, failure));
        }
    }

    /// The next requests for page `page` of the repository listing (organisation or user, any path
    /// form) fail with `failures`, one each, in order; then that page is served normally again.
    /// Other pages and endpoints are not affected. Calls for the same page queue up.
    pub fn fail_listing_page(&self, page: usize, failures: Vec<Failure>) {
        let mut st = self.lock();
        match st.page_failures.iter_mut().find(|(p, _)| *p == page) {
            Some((_, queue)) => queue.extend(failures),
            None => st.page_failures.push((page, failures.into())),
        }
    }

    /// Makes the listing's pagination misbehave this way from now on (`None`: behave).
    pub fn set_listing_quirk(&self, quirk: Option<ListingQuirk>) {
        self.lock().listing_quirk = quirk;
    }

    /// Every request received so far, in order: (method, path?query, Authorization header).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Forget the recorded requests.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// When `true`, `Link` URLs use GitHub's canonical numeric-id paths
    /// (`/organizations/{id}/repos`, `/user/{id}/repos`) as api.github.com really does, instead of
    /// the path that was requested (the default). Either way they are served.
    pub fn set_canonical_links(&self, on: bool) {
        self.lock().canonical_links = on;
    }

    /// The numeric id the fake gives the owner (as in `owner.id`).
    pub fn owner_id(&self) -> u64 {
        owner_id(&self.lock().owner)
    }

    /// The numeric id the fake gives a repository (stable across `set_repos`).
    pub fn repo_id(&self, name: &str) -> u64 {
        repo_id(&self.lock().owner, name)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// An installation token the fake issued.
struct IssuedToken {
    token: String,
    /// Epoch seconds from which it is refused.
    expires_at: u64,
}

fn accepts(st: &State, token: &str) -> bool {
    st.token.as_deref() == Some(token)
        || st
            .issued
            .iter()
            .any(|issued| issued.token == token && now_epoch() < issued.expires_at)
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panicking test thread must not turn every later request into a poison error.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Responder
// ---------------------------------------------------------------------------------------------

const JSON_MIME: &str = "application/json; charset=utf-8";
const HTML_MIME: &str = "text/html; charset=utf-8";
const DOCS: &str = "https://docs.github.com/rest";
const RATE_DOCS: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";
const LIMIT_AUTHENTICATED: u64 = 5000;
const LIMIT_ANONYMOUS: u64 = 60;

struct Responder {
    base: String,
    state: Arc<Mutex<State>>,
}

/// Per-request facts fixed at the start of handling.
struct Ctx {
    base: String,
    authenticated: bool,
    limit: u64,
    used: u64,
    reset_at: u64,
    request_id: String,
}

impl Ctx {
    fn remaining(&self) -> u64 {
        // The fake never runs out on its own: use `Failure::RateLimited` for that.
        self.limit.saturating_sub(self.used).max(1)
    }

    /// A response with GitHub's standard headers.
    fn template(&self, status: u16) -> ResponseTemplate {
        ResponseTemplate::new(status)
            .insert_header("server", "github.com")
            .insert_header("x-github-media-type", "github.v3; format=json")
            .insert_header("x-github-api-version-selected", "2022-11-28")
            .insert_header("x-github-request-id", self.request_id.as_str())
            .insert_header("x-ratelimit-limit", self.limit.to_string().as_str())
            .insert_header(
                "x-ratelimit-remaining",
                self.remaining().to_string().as_str(),
            )
            .insert_header("x-ratelimit-reset", self.reset_at.to_string().as_str())
            .insert_header("x-ratelimit-used", self.used.to_string().as_str())
            .insert_header("x-ratelimit-resource", "core")
            .insert_header(
                "access-control-expose-headers",
                "ETag, Link, Location, Retry-After, X-GitHub-OTP, X-RateLimit-Limit, \
                 X-RateLimit-Remaining, X-RateLimit-Used, X-RateLimit-Resource, \
                 X-RateLimit-Reset, X-OAuth-Scopes, X-Accepted-OAuth-Scopes, X-Poll-Interval, \
                 X-GitHub-Media-Type, X-GitHub-SSO, X-GitHub-Request-Id, Deprecation, Sunset",
            )
            .insert_header("access-control-allow-origin", "*")
    }

    fn json(&self, status: u16, body: &Value) -> ResponseTemplate {
        let bytes = serde_json::to_vec(body).expect("serialise JSON");
        self.template(status).set_body_raw(bytes, JSON_MIME)
    }

    fn error(&self, status: u16, message: &str, documentation_url: &str) -> ResponseTemplate {
        self.json(
            status,
            &json!({
                "message": message,
                "documentation_url": documentation_url,
                "status": status.to_string(),
            }),
        )
    }

    fn not_found(&self) -> ResponseTemplate {
        self.error(404, "Not Found", DOCS)
    }
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let method = request.method.as_str().to_string();
        let path = request.url.path().to_string();
        let path_and_query = match request.url.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let authorization = request
            .headers
            .get("authorization")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());

        // Record, pick a failure, count the request, snapshot what routing needs.
        let app = lock(&self.state).app.clone();
        if let Some(app) = app {
            if method == "POST"
                && path == format!("/app/installations/{}/access_tokens", app.installation_id)
            {
                let mut st = lock(&self.state);
                st.requests
                    .push((method.clone(), path.clone(), authorization.clone()));
                if let Err(message) = app.check_jwt(authorization.as_deref()) {
                    return ResponseTemplate::new(401)
                        .insert_header("content-type", JSON_MIME)
                        .set_body_json(
                            json!({"message": message, "documentation_url": DOCS, "status": "401"}),
                        );
                }
                let (token, expires_at) = match st.token_lifetime {
                    Some(lifetime) => (
                        format!("ghs_shortlived{:04}secretvalue", st.issued.len() + 1),
                        now_epoch() + lifetime.as_secs(),
                    ),
                    None => (app.token.clone(), now_epoch() + 3600),
                };
                st.issued.push(IssuedToken {
                    token: token.clone(),
                    expires_at,
                });
                return AppInstallation::token_answer(&token, expires_at);
            }
        }
        let (ctx, failure, authorised, snapshot) = {
            let mut st = lock(&self.state);
            st.requests
                .push((method.clone(), path_and_query, authorization.clone()));
            st.request_serial += 1;
            let failure = match st.failures.front_mut() {
                Some((remaining, failure)) => {
                    let f = failure.clone();
                    *remaining -= 1;
                    if *remaining == 0 {
                        st.failures.pop_front();
                    }
                    Some(f)
                }
                None => None,
            };
            let failure = failure.or_else(|| {
                if !is_listing_path(&path) {
                    return None;
                }
                let page = paging(request).1;
                st.page_failures
                    .iter_mut()
                    .find(|(p, _)| *p == page)
                    .and_then(|(_, queue)| queue.pop_front())
            });
            let authenticated = authorization.is_some();
            let used = if authenticated {
                st.used_authenticated += 1;
                st.used_authenticated
            } else {
                st.used_anonymous += 1;
                st.used_anonymous
            };
            let ctx = Ctx {
                base: self.base.clone(),
                authenticated,
                limit: if authenticated {
                    LIMIT_AUTHENTICATED
                } else {
                    LIMIT_ANONYMOUS
                },
                used,
                reset_at: st.reset_at,
                request_id: format!(
                    "C0DE:{:04X}:{:06X}:{:07X}:{:08X}",
                    std::process::id() & 0xFFFF,
                    st.request_serial,
                    st.request_serial * 7,
                    now_epoch() & 0xFFFF_FFFF
                ),
            };
            let snapshot = Snapshot {
                owner: st.owner.clone(),
                kind: st.kind,
                repos: st.repos.clone(),
                canonical_links: st.canonical_links,
                listing_quirk: st.listing_quirk,
                compare_delay: st.compare_delay,
            };
            // Credentials are demanded once a token is required or installation tokens exist.
            let authorised = if st.token.is_some() || !st.issued.is_empty() {
                let presented = authorization.as_deref().and_then(presented_token);
                presented.is_some_and(|token| accepts(&st, token))
            } else {
                true
            };
            (ctx, failure, authorised, snapshot)
        };

        if let Some(failure) = failure {
            return failure_response(&ctx, &failure);
        }

        if !authorised {
            return ctx.error(401, "Bad credentials", DOCS);
        }

        if method != "GET" && method != "HEAD" {
            return ctx.not_found();
        }
        route(&ctx, &snapshot, request)
    }
}

struct Snapshot {
    owner: String,
    kind: OwnerKind,
    repos: Vec<FakeRepo>,
    canonical_links: bool,
    listing_quirk: Option<ListingQuirk>,
    compare_delay: Option<std::time::Duration>,
}

impl Snapshot {
    fn is_owner(&self, login: &str) -> bool {
        login.eq_ignore_ascii_case(&self.owner)
    }

    fn find_repo(&self, owner: &str, name: &str) -> Option<&FakeRepo> {
        if !self.is_owner(owner) {
            return None;
        }
        self.repos
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }
}

/// The token of an `Authorization: Bearer <token>` or `token <token>` header.
fn presented_token(header: &str) -> Option<&str> {
    let (scheme, value) = header.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| value.trim())
}

fn failure_response(ctx: &Ctx, failure: &Failure) -> ResponseTemplate {
    match failure {
        Failure::Unauthorized => ctx.error(401, "Bad credentials", DOCS),
        Failure::NotFound => ctx.not_found(),
        Failure::RateLimited { reset_in_secs } => {
            let now = now_epoch();
            let message = if ctx.authenticated {
                format!(
                    "API rate limit exceeded for user ID 1. If you reach out to GitHub Support \
                     for help, please include the request ID {} and timestamp {}.",
                    ctx.request_id,
                    format_utc_human(now)
                )
            } else {
                "API rate limit exceeded for 127.0.0.1. (But here's the good news: \
                 Authenticated requests get a higher rate limit. Check out the documentation \
                 for more details.)"
                    .to_string()
            };
            let body = json!({
                "message": message,
                "documentation_url": RATE_DOCS,
                "status": "403",
            });
            ResponseTemplate::new(403)
                .set_body_raw(serde_json::to_vec(&body).unwrap(), JSON_MIME)
                .insert_header("server", "github.com")
                .insert_header("x-github-media-type", "github.v3; format=json")
                .insert_header("x-github-request-id", ctx.request_id.as_str())
                .insert_header("x-ratelimit-limit", ctx.limit.to_string().as_str())
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", (now + reset_in_secs).to_string().as_str())
                .insert_header("x-ratelimit-used", ctx.limit.to_string().as_str())
                .insert_header("x-ratelimit-resource", "core")
        }
        Failure::SecondaryRateLimit { retry_after_secs } => {
            secondary_rate_limit(ctx, 429, *retry_after_secs)
        }
        Failure::SecondaryRateLimitForbidden { retry_after_secs } => {
            secondary_rate_limit(ctx, 403, *retry_after_secs)
        }
        Failure::SlowServerError { status, delay } => {
            failure_response(ctx, &Failure::ServerError(*status)).set_delay(*delay)
        }
        Failure::ServerError(code) => match code {
            502 => ctx.template(502).set_body_raw(
                unicorn_page("Server Error", "We couldn't respond to your request in time."),
                HTML_MIME,
            ),
            503 => ctx.template(503).set_body_raw(
                unicorn_page(
                    "No server is currently available to service your request.",
                    "Sorry about that. Please try refreshing and contact us if the problem persists.",
                ),
                HTML_MIME,
            ),
            504 => ctx.json(
                504,
                &json!({"message": "We couldn't respond to your request in time. Sorry about \
                         that. Please try resubmitting your request and contact us if the \
                         problem persists."}),
            ),
            code => ctx.json(*code, &json!({"message": "Server Error"})),
        },
    }
}

fn secondary_rate_limit(ctx: &Ctx, status: u16, retry_after_secs: u64) -> ResponseTemplate {
    let body = json!({
        "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
        "message": format!(
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try \
             again. If you reach out to GitHub Support for help, please include the request ID {}.",
            ctx.request_id
        ),
        "status": status.to_string(),
    });
    ctx.json(status, &body)
        .insert_header("retry-after", retry_after_secs.to_string().as_str())
}

fn unicorn_page(title: &str, detail: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta http-equiv=\"Content-Type\" \
         content=\"text/html; charset=utf-8\">\n    <title>Unicorn! &middot; GitHub</title>\n  \
         </head>\n  <body>\n    <div class=\"container\">\n      <h1>{title}</h1>\n      \
         <p>{detail}</p>\n    </div>\n  </body>\n</html>\n"
    )
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

fn route(ctx: &Ctx, snap: &Snapshot, request: &Request) -> ResponseTemplate {
    let path = request.url.path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["rate_limit"] => rate_limit_response(ctx),
        ["orgs", org] => {
            if snap.kind == OwnerKind::Org && snap.is_owner(org) {
                ctx.json(200, &owner_profile_json(&ctx.base, snap))
            } else {
                ctx.not_found()
            }
        }
        ["users", login] => {
            if snap.is_owner(login) {
                ctx.json(200, &owner_profile_json(&ctx.base, snap))
            } else {
                ctx.not_found()
            }
        }
        ["orgs", org, "repos"] => {
            if snap.kind == OwnerKind::Org && snap.is_owner(org) {
                list_repos(ctx, snap, request, "all")
            } else {
                ctx.not_found()
            }
        }
        ["users", login, "repos"] => {
            if snap.is_owner(login) && snap.kind == OwnerKind::Org {
                // GitHub lists only an organisation's public repositories here, whoever asks.
                list_repos(ctx, snap, request, PUBLIC_ONLY)
            } else if snap.is_owner(login) {
                list_repos(ctx, snap, request, "owner")
            } else {
                ctx.not_found()
            }
        }
        ["organizations", id, "repos"] => {
            if snap.kind == OwnerKind::Org && *id == owner_id(&snap.owner).to_string() {
                list_repos(ctx, snap, request, "all")
            } else {
                ctx.not_found()
            }
        }
        ["user", id, "repos"] => {
            if *id == owner_id(&snap.owner).to_string() {
                list_repos(ctx, snap, request, "owner")
            } else {
                ctx.not_found()
            }
        }
        ["repos", owner, name] => match snap.find_repo(owner, name) {
            Some(repo) => ctx.json(200, &repo_json(&ctx.base, snap, repo, true)),
            None => ctx.not_found(),
        },
        ["repos", owner, name, "compare", rest @ ..] if !rest.is_empty() => {
            match snap.find_repo(owner, name) {
                Some(repo) => {
                    let answer = compare(ctx, snap, repo, &rest.join("/"));
                    match snap.compare_delay {
                        Some(delay) => answer.set_delay(delay),
                        None => answer,
                    }
                }
                None => ctx.not_found(),
            }
        }
        _ => ctx.not_found(),
    }
}

fn rate_limit_response(ctx: &Ctx) -> ResponseTemplate {
    let core = json!({
        "limit": ctx.limit,
        "used": ctx.used,
        "remaining": ctx.remaining(),
        "reset": ctx.reset_at,
    });
    ctx.json(
        200,
        &json!({
            "resources": {
                "core": core,
                "search": {"limit": 30, "used": 0, "remaining": 30, "reset": ctx.reset_at},
                "graphql": {"limit": ctx.limit, "used": 0, "remaining": ctx.limit, "reset": ctx.reset_at},
            },
            "rate": core,
        }),
    )
}

/// The listing type of an organisation's repositories seen through `/users/{org}/repos`.
const PUBLIC_ONLY: &str = "public-only";

/// Whether `path` is one of the repository listings (organisation or user, by name or by id).
fn is_listing_path(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        ["orgs" | "users" | "organizations" | "user", _, "repos"]
    )
}

/// Parse GitHub's paging parameters: (per_page, page).
fn paging(request: &Request) -> (usize, usize) {
    let mut per_page = 30usize;
    let mut page = 1usize;
    for (k, v) in request.url.query_pairs() {
        match k.as_ref() {
            "per_page" => {
                per_page = match v.trim().parse::<usize>() {
                    Ok(0) | Err(_) => 30,
                    Ok(n) => n.min(100),
                }
            }
            "page" => {
                page = match v.trim().parse::<usize>() {
                    Ok(0) | Err(_) => 1,
                    Ok(n) => n,
                }
            }
            _ => {}
        }
    }
    (per_page, page)
}

fn query_value(request: &Request, key: &str) -> Option<String> {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// One page of a repository listing. `default_type` applies when the request names no `type`;
/// `"public-only"` serves public repositories whatever the request asks (an organisation seen through
/// the user endpoint).
fn list_repos(
    ctx: &Ctx,
    snap: &Snapshot,
    request: &Request,
    default_type: &str,
) -> ResponseTemplate {
    let kind = if default_type == PUBLIC_ONLY {
        "public".to_string()
    } else {
        query_value(request, "type").unwrap_or_else(|| default_type.to_string())
    };
    let mut repos: Vec<&FakeRepo> = snap
        .repos
        .iter()
        .filter(|r| match kind.as_str() {
            "public" => r.visibility == "public",
            "private" => r.visibility != "public",
            "forks" => r.fork,
            "sources" => !r.fork,
            // A user's "member" listing holds repos of others the user collaborates on: none here.
            "member" if snap.kind == OwnerKind::User => false,
            _ => true,
        })
        .collect();

    // Default order is the order the test gave; `sort=full_name` / `sort=pushed` are honoured.
    match query_value(request, "sort").as_deref() {
        Some("full_name") => {
            repos.sort_by_key(|r| r.name.to_ascii_lowercase());
            if query_value(request, "direction").as_deref() == Some("desc") {
                repos.reverse();
            }
        }
        Some("pushed") => {
            repos.sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at));
            if query_value(request, "direction").as_deref() == Some("asc") {
                repos.reverse();
            }
        }
        _ => {}
    }

    let (per_page, page) = paging(request);
    let total = repos.len();
    let last_page = total.div_ceil(per_page).max(1);
    let served_page = match snap.listing_quirk {
        Some(ListingQuirk::RepeatsPage { page: p, serves }) if p == page => serves,
        _ => page,
    };
    let start = (served_page - 1).saturating_mul(per_page).min(total);
    let end = (start + per_page).min(total);
    let body: Vec<Value> = repos[start..end]
        .iter()
        .map(|r| repo_json(&ctx.base, snap, r, false))
        .collect();

    let mut response = ctx.json(200, &Value::Array(body));
    if last_page > 1 || page > 1 {
        let link_path = if snap.canonical_links {
            match snap.kind {
                OwnerKind::Org => format!("/organizations/{}/repos", owner_id(&snap.owner)),
                OwnerKind::User => format!("/user/{}/repos", owner_id(&snap.owner)),
            }
        } else {
            request.url.path().to_string()
        };
        let raw_query = request.url.query().unwrap_or("");
        let link = |p: usize| format!("<{}{}?{}>", ctx.base, link_path, with_page(raw_query, p));
        let mut parts = Vec::new();
        if page > 1 {
            parts.push(format!("{}; rel=\"prev\"", link(page - 1)));
        }
        if page < last_page {
            let next = match snap.listing_quirk {
                Some(ListingQuirk::NextLoopsTo { on_page, to_page }) if on_page == page => to_page,
                _ => page + 1,
            };
            let announced_last = match snap.listing_quirk {
                Some(ListingQuirk::LastUnderstated { last }) => last,
                _ => last_page,
            };
            parts.push(format!("{}; rel=\"next\"", link(next)));
            parts.push(format!("{}; rel=\"last\"", link(announced_last)));
        }
        if page > 1 {
            parts.push(format!("{}; rel=\"first\"", link(1)));
        }
        response = response.insert_header("link", parts.join(", ").as_str());
    }
    response
}

/// The raw query string with `page` set to `page` (replaced in place, or appended).
fn with_page(raw_query: &str, page: usize) -> String {
    let mut found = false;
    let mut parts: Vec<String> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let key = p.split('=').next().unwrap_or("");
            if key == "page" {
                found = true;
                format!("page={page}")
            } else {
                p.to_string()
            }
        })
        .collect();
    if !found {
        parts.push(format!("page={page}"));
    }
    parts.join("&")
}

// ---------------------------------------------------------------------------------------------
// JSON shapes
// ---------------------------------------------------------------------------------------------

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn owner_id(owner: &str) -> u64 {
    10_000_000 + fnv1a(owner) % 89_999_999
}

fn repo_id(owner: &str, name: &str) -> u64 {
    100_000_000 + fnv1a(&format!("{owner}/{name}")) % 899_999_999
}

fn owner_simple_json(base: &str, snap: &Snapshot) -> Value {
    let login = &snap.owner;
    let id = owner_id(login);
    let (node_prefix, type_name) = match snap.kind {
        OwnerKind::Org => ("O_kgDO", "Organization"),
        OwnerKind::User => ("U_kgDO", "User"),
    };
    json!({
        "login": login,
        "id": id,
        "node_id": format!("{node_prefix}{id:08X}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": format!("{base}/users/{login}"),
        "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{base}/users/{login}/followers"),
        "following_url": format!("{base}/users/{login}/following{{/other_user}}"),
        "gists_url": format!("{base}/users/{login}/gists{{/gist_id}}"),
        "starred_url": format!("{base}/users/{login}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{base}/users/{login}/subscriptions"),
        "organizations_url": format!("{base}/users/{login}/orgs"),
        "repos_url": format!("{base}/users/{login}/repos"),
        "events_url": format!("{base}/users/{login}/events{{/privacy}}"),
        "received_events_url": format!("{base}/users/{login}/received_events"),
        "type": type_name,
        "user_view_type": "public",
        "site_admin": false,
    })
}

/// `GET /orgs/{org}` for an org, `GET /users/{login}` for either.
fn owner_profile_json(base: &str, snap: &Snapshot) -> Value {
    let mut v = owner_simple_json(base, snap);
    let login = snap.owner.clone();
    let obj = v.as_object_mut().unwrap();
    let public_repos = snap
        .repos
        .iter()
        .filter(|r| r.visibility == "public")
        .count();
    obj.insert("name".into(), json!(login));
    obj.insert("company".into(), Value::Null);
    obj.insert("blog".into(), json!(""));
    obj.insert("location".into(), Value::Null);
    obj.insert("email".into(), Value::Null);
    obj.insert("bio".into(), Value::Null);
    obj.insert("twitter_username".into(), Value::Null);
    obj.insert("public_repos".into(), json!(public_repos));
    obj.insert("public_gists".into(), json!(0));
    obj.insert("followers".into(), json!(0));
    obj.insert("following".into(), json!(0));
    obj.insert("created_at".into(), json!("2015-01-01T00:00:00Z"));
    obj.insert("updated_at".into(), json!("2026-01-01T00:00:00Z"));
    if snap.kind == OwnerKind::Org {
        obj.insert(
            "repos_url".into(),
            json!(format!("{base}/orgs/{login}/repos")),
        );
        obj.insert("description".into(), Value::Null);
        obj.insert("has_organization_projects".into(), json!(true));
        obj.insert("has_repository_projects".into(), json!(true));
        obj.insert("is_verified".into(), json!(false));
        obj.insert(
            "hooks_url".into(),
            json!(format!("{base}/orgs/{login}/hooks")),
        );
        obj.insert(
            "issues_url".into(),
            json!(format!("{base}/orgs/{login}/issues")),
        );
        obj.insert(
            "members_url".into(),
            json!(format!("{base}/orgs/{login}/members{{/member}}")),
        );
        obj.insert(
            "public_members_url".into(),
            json!(format!("{base}/orgs/{login}/public_members{{/member}}")),
        );
    } else {
        obj.insert("hireable".into(), Value::Null);
    }
    v
}

/// The `*_url` templates of a repository object: (key, suffix after the repo's API URL).
const REPO_URL_TEMPLATES: &[(&str, &str)] = &[
    ("forks_url", "/forks"),
    ("keys_url", "/keys{/key_id}"),
    ("collaborators_url", "/collaborators{/collaborator}"),
    ("teams_url", "/teams"),
    ("hooks_url", "/hooks"),
    ("issue_events_url", "/issues/events{/number}"),
    ("events_url", "/events"),
    ("assignees_url", "/assignees{/user}"),
    ("branches_url", "/branches{/branch}"),
    ("tags_url", "/tags"),
    ("blobs_url", "/git/blobs{/sha}"),
    ("git_tags_url", "/git/tags{/sha}"),
    ("git_refs_url", "/git/refs{/sha}"),
    ("trees_url", "/git/trees{/sha}"),
    ("statuses_url", "/statuses/{sha}"),
    ("languages_url", "/languages"),
    ("stargazers_url", "/stargazers"),
    ("contributors_url", "/contributors"),
    ("subscribers_url", "/subscribers"),
    ("subscription_url", "/subscription"),
    ("commits_url", "/commits{/sha}"),
    ("git_commits_url", "/git/commits{/sha}"),
    ("comments_url", "/comments{/number}"),
    ("issue_comment_url", "/issues/comments{/number}"),
    ("contents_url", "/contents/{+path}"),
    ("compare_url", "/compare/{base}...{head}"),
    ("merges_url", "/merges"),
    ("archive_url", "/{archive_format}{/ref}"),
    ("downloads_url", "/downloads"),
    ("issues_url", "/issues{/number}"),
    ("pulls_url", "/pulls{/number}"),
    ("milestones_url", "/milestones{/number}"),
    (
        "notifications_url",
        "/notifications{?since,all,participating}",
    ),
    ("labels_url", "/labels{/name}"),
    ("releases_url", "/releases{/id}"),
    ("deployments_url", "/deployments"),
];

fn repo_json(base: &str, snap: &Snapshot, repo: &FakeRepo, full: bool) -> Value {
    let owner = &snap.owner;
    let name = &repo.name;
    let full_name = format!("{owner}/{name}");
    let id = repo_id(owner, name);
    let api = format!("{base}/repos/{full_name}");
    let html = format!("https://github.com/{full_name}");
    let private = repo.visibility != "public";
    let mut v = json!({
        "id": id,
        "node_id": format!("R_kgDO{id:08X}"),
        "name": name,
        "full_name": full_name,
        "private": private,
        "owner": owner_simple_json(base, snap),
        "html_url": html,
        "description": repo.description,
        "fork": repo.fork,
        "url": api,
        "created_at": "2020-01-01T00:00:00Z",
        "updated_at": repo.pushed_at,
        "pushed_at": repo.pushed_at,
        "git_url": format!("git://github.com/{full_name}.git"),
        "ssh_url": format!("git@github.com:{full_name}.git"),
        "clone_url": repo.clone_url,
        "svn_url": html,
    });
    // Split in two: one `json!` this size would exceed the default macro recursion limit.
    let rest = json!({
        "homepage": Value::Null,
        "size": repo.size,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": Value::Null,
        "has_issues": true,
        "has_projects": true,
        "has_downloads": true,
        "has_wiki": true,
        "has_pages": false,
        "has_discussions": false,
        "forks_count": 0,
        "mirror_url": Value::Null,
        "archived": repo.archived,
        "disabled": repo.disabled,
        "open_issues_count": 0,
        "license": Value::Null,
        "allow_forking": true,
        "is_template": false,
        "web_commit_signoff_required": false,
        "topics": repo.topics,
        "visibility": repo.visibility,
        "forks": 0,
        "open_issues": 0,
        "watchers": 0,
        "default_branch": repo.default_branch,
        "permissions": {
            "admin": false,
            "maintain": false,
            "push": false,
            "triage": false,
            "pull": true,
        },
    });
    let obj = v.as_object_mut().unwrap();
    if let Value::Object(rest) = rest {
        obj.extend(rest);
    }
    for (key, suffix) in REPO_URL_TEMPLATES {
        obj.insert((*key).to_string(), json!(format!("{api}{suffix}")));
    }
    if full {
        obj.insert("temp_clone_token".into(), json!(""));
        obj.insert("network_count".into(), json!(0));
        obj.insert("subscribers_count".into(), json!(0));
        obj.insert("allow_squash_merge".into(), json!(true));
        obj.insert("allow_merge_commit".into(), json!(true));
        obj.insert("allow_rebase_merge".into(), json!(true));
        obj.insert("allow_auto_merge".into(), json!(false));
        obj.insert("delete_branch_on_merge".into(), json!(false));
        obj.insert("allow_update_branch".into(), json!(false));
        if snap.kind == OwnerKind::Org {
            obj.insert("organization".into(), owner_simple_json(base, snap));
        }
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Compare, with real git
// ---------------------------------------------------------------------------------------------

const COMPARE_DOCS: &str = "https://docs.github.com/rest/commits/commits#compare-two-commits";

fn compare(ctx: &Ctx, snap: &Snapshot, repo: &FakeRepo, basehead: &str) -> ResponseTemplate {
    let Some((base, head)) = basehead.split_once("...") else {
        return ctx.error(404, "Not Found", COMPARE_DOCS);
    };
    let Some(git_dir) = repo.git_dir.as_deref() else {
        eprintln!(
            "GitHubFake: compare asked for {}/{} but its FakeRepo has no git_dir",
            snap.owner, repo.name
        );
        return ctx.error(
            500,
            &format!(
                "GitHubFake: FakeRepo {:?} has no git_dir to compare in",
                repo.name
            ),
            COMPARE_DOCS,
        );
    };
    let (Some(base_sha), Some(head_sha)) = (resolve(git_dir, base), resolve(git_dir, head)) else {
        return ctx.error(404, "Not Found", COMPARE_DOCS);
    };
    let Some(merge_base) = git(git_dir, &["merge-base", &base_sha, &head_sha]) else {
        return ctx.error(
            404,
            &format!("No common ancestor between {base} and {head}."),
            COMPARE_DOCS,
        );
    };
    let merge_base = merge_base.trim().to_string();
    let count = |range: String| -> u64 {
        git(git_dir, &["rev-list", "--count", &range])
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    let ahead_by = count(format!("{base_sha}..{head_sha}"));
    let behind_by = count(format!("{head_sha}..{base_sha}"));
    let status = match (ahead_by, behind_by) {
        (0, 0) => "identical",
        (_, 0) => "ahead",
        (0, _) => "behind",
        _ => "diverged",
    };

    let owner = &snap.owner;
    let full_name = format!("{owner}/{}", repo.name);
    let api = format!("{}/repos/{full_name}", ctx.base);
    let html = format!("https://github.com/{full_name}");

    let commit_shas: Vec<String> = git(
        git_dir,
        &["rev-list", "--reverse", &format!("{base_sha}..{head_sha}")],
    )
    .unwrap_or_default()
    .lines()
    .map(str::to_string)
    .take(250)
    .collect();
    let commits: Vec<Value> = commit_shas
        .iter()
        .filter_map(|sha| commit_json(git_dir, &api, &html, sha))
        .collect();
    let files = diff_files(git_dir, &api, &html, &merge_base, &head_sha);

    let (Some(base_commit), Some(merge_base_commit)) = (
        commit_json(git_dir, &api, &html, &base_sha),
        commit_json(git_dir, &api, &html, &merge_base),
    ) else {
        return ctx.error(404, "Not Found", COMPARE_DOCS);
    };

    let short = |s: &str| s.chars().take(7).collect::<String>();
    ctx.json(
        200,
        &json!({
            "url": format!("{api}/compare/{base}...{head}"),
            "html_url": format!("{html}/compare/{base}...{head}"),
            "permalink_url": format!(
                "{html}/compare/{owner}:{}...{owner}:{}",
                short(&base_sha),
                short(&head_sha)
            ),
            "diff_url": format!("{html}/compare/{base}...{head}.diff"),
            "patch_url": format!("{html}/compare/{base}...{head}.patch"),
            "base_commit": base_commit,
            "merge_base_commit": merge_base_commit,
            "status": status,
            "ahead_by": ahead_by,
            "behind_by": behind_by,
            "total_commits": ahead_by,
            "commits": commits,
            "files": files,
        }),
    )
}

/// Run git against `git_dir`; `Some(stdout)` on success.
fn git(git_dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(args)
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_OBJECT_DIRECTORY")
        .env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES")
        .output()
        .ok()?;
    if output.status.success() {
        Some(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        None
    }
}

/// Resolve a commit-ish (a sha, or a branch/tag name as GitHub also accepts) to a full sha.
fn resolve(git_dir: &Path, rev: &str) -> Option<String> {
    if rev.is_empty() || rev.starts_with('-') {
        return None;
    }
    let spec = format!("{rev}^{{commit}}");
    let out = git(
        git_dir,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &spec,
        ],
    )?;
    let sha = out.trim().to_string();
    (!sha.is_empty()).then_some(sha)
}

fn commit_json(git_dir: &Path, api: &str, html: &str, sha: &str) -> Option<Value> {
    const FORMAT: &str = "%H%x00%T%x00%P%x00%an%x00%ae%x00%ad%x00%cn%x00%ce%x00%cd%x00%B";
    let out = git(
        git_dir,
        &[
            "show",
            "-s",
            "--date=format-local:%Y-%m-%dT%H:%M:%SZ",
            &format!("--format={FORMAT}"),
            sha,
        ],
    )?;
    let f: Vec<&str> = out.splitn(10, '\0').collect();
    if f.len() < 10 {
        return None;
    }
    let sha = f[0].trim();
    let parents: Vec<Value> = f[2]
        .split_whitespace()
        .map(|p| {
            json!({
                "sha": p,
                "url": format!("{api}/commits/{p}"),
                "html_url": format!("{html}/commit/{p}"),
            })
        })
        .collect();
    let message = f[9].trim_end_matches('\n');
    Some(json!({
        "sha": sha,
        "node_id": format!("C_kwDO{}", &sha[..12.min(sha.len())]),
        "commit": {
            "author": {"name": f[3], "email": f[4], "date": f[5]},
            "committer": {"name": f[6], "email": f[7], "date": f[8]},
            "message": message,
            "tree": {"sha": f[1], "url": format!("{api}/git/trees/{}", f[1])},
            "url": format!("{api}/git/commits/{sha}"),
            "comment_count": 0,
            "verification": {
                "verified": false,
                "reason": "unsigned",
                "signature": Value::Null,
                "payload": Value::Null,
                "verified_at": Value::Null,
            },
        },
        "url": format!("{api}/commits/{sha}"),
        "html_url": format!("{html}/commit/{sha}"),
        "comments_url": format!("{api}/commits/{sha}/comments"),
        "author": Value::Null,
        "committer": Value::Null,
        "parents": parents,
    }))
}

/// The `files` array of a compare: the diff from the merge base to head (at most 300 files).
fn diff_files(git_dir: &Path, api: &str, html: &str, from: &str, to: &str) -> Vec<Value> {
    let raw = git(git_dir, &["diff", "--no-renames", "--raw", "-z", from, to]).unwrap_or_default();
    let numstat = git(
        git_dir,
        &["diff", "--no-renames", "--numstat", "-z", from, to],
    )
    .unwrap_or_default();

    // numstat -z: "ADD\tDEL\tPATH\0" per file ("-" for binary).
    let mut counts = std::collections::HashMap::new();
    for rec in numstat.split('\0').filter(|r| !r.is_empty()) {
        let mut it = rec.splitn(3, '\t');
        let (Some(a), Some(d), Some(p)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        counts.insert(
            p.to_string(),
            (a.parse::<u64>().unwrap_or(0), d.parse::<u64>().unwrap_or(0)),
        );
    }

    // raw -z: ":MODE MODE SHA SHA STATUS\0PATH\0" per file.
    let fields: Vec<&str> = raw.split('\0').collect();
    let mut files = Vec::new();
    let mut i = 0;
    while i + 1 < fields.len() && files.len() < 300 {
        let meta = fields[i];
        let path = fields[i + 1];
        i += 2;
        if !meta.starts_with(':') {
            continue;
        }
        let parts: Vec<&str> = meta[1..].split_whitespace().collect();
        if parts.len() < 5 {
            continue;
        }
        let new_sha = parts[3];
        let status = match parts[4].chars().next() {
            Some('A') => "added",
            Some('D') => "removed",
            Some('M') => "modified",
            Some('T') => "changed",
            _ => "modified",
        };
        let blob = if status == "removed" {
            parts[2]
        } else {
            new_sha
        };
        let (additions, deletions) = counts.get(path).copied().unwrap_or((0, 0));
        files.push(json!({
            "sha": blob,
            "filename": path,
            "status": status,
            "additions": additions,
            "deletions": deletions,
            "changes": additions + deletions,
            "blob_url": format!("{html}/blob/{to}/{path}"),
            "raw_url": format!("{html}/raw/{to}/{path}"),
            "contents_url": format!("{api}/contents/{path}?ref={to}"),
        }));
    }
    files
}

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `YYYY-MM-DD HH:MM:SS UTC`, as GitHub writes timestamps in error messages.
fn format_utc_human(epoch: u64) -> String {
    let at =
        time::OffsetDateTime::from_unix_timestamp(epoch as i64).expect("a time the calendar holds");
    at.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
    ))
    .expect("format a time")
}

/// A GitHub App installation the fake issues tokens for.
#[derive(Clone)]
struct AppInstallation {
    app_id: u64,
    installation_id: u64,
    public_key_pem: String,
    token: String,
}

impl AppInstallation {
    /// Checks the app's JWT as GitHub does (signature with the app's public key, expiry, issuer):
    /// GitHub's 401 message if it is not the app's.
    fn check_jwt(&self, authorization: Option<&str>) -> Result<(), &'static str> {
        let Some(jwt) = authorization.and_then(|h| h.strip_prefix("Bearer ")) else {
            return Err("A JSON web token could not be decoded");
        };
        let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(self.public_key_pem.as_bytes())
        else {
            return Err("the fake's app key is not a PEM public key");
        };
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.required_spec_claims = ["exp"].iter().map(|c| c.to_string()).collect();
        validation.validate_aud = false;
        let claims = match jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation) {
            Ok(data) => data.claims,
            Err(_) => return Err("'Issuer' claim ('iss') must be an Integer or the JWT is not signed by the app's key"),
        };
        let issuer = match &claims["iss"] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        if issuer != Some(self.app_id) {
            return Err("Integration not found");
        }
        Ok(())
    }

    /// GitHub's answer carrying a new installation token.
    fn token_answer(token: &str, expires_at: u64) -> ResponseTemplate {
        ResponseTemplate::new(201)
            .insert_header("content-type", "application/json; charset=utf-8")
            .set_body_json(json!({
                "token": token,
                "expires_at": iso8601(expires_at),
                "permissions": {"contents": "read", "metadata": "read"},
                "repository_selection": "all"
            }))
    }
}

/// Epoch seconds as `YYYY-MM-DDTHH:MM:SSZ`.
fn iso8601(epoch: u64) -> String {
    let at =
        time::OffsetDateTime::from_unix_timestamp(epoch as i64).expect("a time the calendar holds");
    at.format(&time::format_description::well_known::Rfc3339)
        .expect("format a time")
}
