//! A CodeCommit API stand-in speaking the real wire protocol (AWS JSON 1.1: `POST /`,
//! `Content-Type: application/x-amz-json-1.1`, `X-Amz-Target: CodeCommit_20150413.<Action>`),
//! so that the product's own SDK, and its deserialisers, talk to it as to CodeCommit. Point the
//! product at it with `AWS_ENDPOINT_URL_CODECOMMIT` ([`CodeCommitStandIn::env`]).
//!
//! moto implements only CreateRepository, GetRepository and DeleteRepository. The stand-in
//! forwards those to a moto server (with the caller's `Authorization` header, from which moto
//! takes the region) and implements UpdateDefaultBranch, UpdateRepositoryDescription,
//! TagResource, UntagResource, ListTagsForResource and ListRepositories itself, keeping their
//! state per repository name and merging it into GetRepository/CreateRepository answers. Any
//! other action is answered with `UnknownOperationException`. API signatures are not checked.
//!
//! What it adds to moto's answers, as CodeCommit does:
//! - `creationDate` / `lastModifiedDate` as epoch-seconds numbers (moto sends ISO-8601 strings);
//!   null members are left out;
//! - repository names validated as CodeCommit does (`[A-Za-z0-9._-]{1,100}`, not ending in `.git`;
//!   moto checks only the characters): `InvalidRepositoryNameException`,
//!   `RepositoryNameRequiredException`; also `.` and `..` are refused (they would escape the git
//!   root);
//! - descriptions of at most 1,000 characters, tags as CodeCommit limits them (keys 1–128
//!   characters not starting with `aws:`, values up to 256, at most 50 per repository);
//! - tags given to CreateRepository are kept (moto drops them) and listed by ListTagsForResource;
//! - UpdateDefaultBranch checks the branch exists in the repository's bare git repository
//!   (`BranchDoesNotExistException`) and points that repository's `HEAD` at it;
//! - like CodeCommit, the first branch pushed to an empty repository becomes its default branch:
//!   each bare repository gets a `post-receive` hook that, on the first push carrying a branch,
//!   points `HEAD` at the first branch of that push (in the order of the push's commands);
//!   GetRepository then reports it as `defaultBranch` until UpdateDefaultBranch changes it.
//!   Which branch real CodeCommit takes when a first push carries several is not documented.
//!   [`CodeCommitStandIn::set_auto_default_branch`]`(false)` turns the reporting off.
//!
//! # Repository layout
//!
//! CodeCommit's git URLs are `https://git-codecommit.REGION.amazonaws.com/v1/repos/NAME`. Each
//! repository created through the stand-in gets a bare git repository at
//! `GIT_ROOT/v1/repos/NAME` (no `.git` suffix; `git init --bare`, `http.receivepack=true`).
//! A test git server started on `GIT_ROOT` (`GitServer::start(git_root, SigV4GitCheck::….into_auth())`)
//! serves it at `http://127.0.0.1:PORT/v1/repos/NAME` — `git http-backend` resolves
//! `GIT_PROJECT_ROOT + /v1/repos/NAME` to that directory — so the product's
//! `MIRROR_CODECOMMIT_GIT_URL` is `http://127.0.0.1:PORT/v1/repos/{name}`.
//! DeleteRepository removes the directory; CreateRepository replaces a leftover one.
//!
//! # Failure injection and retries
//!
//! [`CodeCommitStandIn::fail_next`] makes the next calls of an action fail with a given error,
//! without forwarding them. Which failures the SDK (aws-sdk-codecommit 1.123, standard retry
//! mode) retries:
//! - an error code (`__type`) in aws-runtime's `THROTTLING_ERRORS` (`ThrottlingException`,
//!   `Throttling`, `TooManyRequestsException`, `RequestLimitExceeded`, `LimitExceededException`,
//!   ...), whatever the status (CodeCommit uses 400): retried as throttling;
//! - `RequestTimeout` / `RequestTimeoutException`: retried as transient;
//! - HTTP 500, 502, 503 and 504, whatever the code: retried as transient;
//! - anything else, including a 429 whose code is not a throttling one (e.g.
//!   `AccessDeniedException`), is not retried.
//!
//! With `AWS_MAX_ATTEMPTS=1` nothing is retried; every attempt is one entry in
//! [`CodeCommitStandIn::calls`].
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::thread_server::{Stop, ThreadServer};

const TARGET_PREFIX: &str = "CodeCommit_20150413.";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// ListRepositories' page size (CodeCommit's is 1,000).
const DEFAULT_PAGE_SIZE: usize = 1000;

/// The stand-in server. Dropping it stops it.
pub struct CodeCommitStandIn {
    server: ThreadServer,
    shared: Arc<Shared>,
}

struct Shared {
    moto: SocketAddr,
    git_root: PathBuf,
    state: Mutex<State>,
    next_request_id: AtomicU64,
    /// What a held call waits on (nothing signals it: the hold just runs out).
    hang_ended: Condvar,
}

#[derive(Default)]
struct State {
    /// Repositories the stand-in knows of (created through it, or seen in a GetRepository answer).
    repos: BTreeMap<String, RepoState>,
    calls: Vec<(String, Value)>,
    failures: HashMap<String, VecDeque<Injected>>,
    /// Actions whose next call is held this long before it is carried out.
    hangs: HashMap<String, Duration>,
    page_size: usize,
    no_auto_default_branch: bool,
}

#[derive(Clone, Debug, Default)]
struct RepoState {
    description: Option<String>,
    default_branch: Option<String>,
    tags: BTreeMap<String, String>,
    /// Epoch seconds of the last change made by an action the stand-in implements.
    last_modified: Option<f64>,
}

#[derive(Clone, Debug)]
struct Injected {
    error_type: String,
    status: u16,
    message: String,
}

/// An answer to the client.
struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn ok(value: Value) -> Reply {
        Reply {
            status: 200,
            body: value.to_string().into_bytes(),
        }
    }

    fn error(status: u16, error_type: &str, message: &str) -> Reply {
        Reply {
            status,
            body: json!({ "__type": error_type, "message": message })
                .to_string()
                .into_bytes(),
        }
    }

    fn bad(error_type: &str, message: &str) -> Reply {
        Reply::error(400, error_type, message)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl CodeCommitStandIn {
    /// Starts the stand-in on 127.0.0.1 (a free port), forwarding to the moto server at
    /// `moto_endpoint` (`http://127.0.0.1:PORT`), with bare repositories at
    /// `git_root/v1/repos/NAME` (see the module docs). Returns once listening.
    pub fn start(moto_endpoint: &str, git_root: &Path) -> CodeCommitStandIn {
        let moto: SocketAddr = moto_endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|e| {
                panic!("moto endpoint {moto_endpoint:?} is not http://IP:PORT: {e}")
            });
        std::fs::create_dir_all(git_root.join("v1/repos"))
            .unwrap_or_else(|e| panic!("cannot create {}/v1/repos: {e}", git_root.display()));
        let git_root = git_root.canonicalize().expect("canonical git root");
        let shared = Arc::new(Shared {
            moto,
            git_root,
            state: Mutex::new(State {
                page_size: DEFAULT_PAGE_SIZE,
                ..State::default()
            }),
            next_request_id: AtomicU64::new(1),
            hang_ended: Condvar::new(),
        });
        let serving = Arc::clone(&shared);
        let server = ThreadServer::start("CodeCommit stand-in", move |stream, stop| {
            serve_connection(stream, &serving, stop)
        });
        CodeCommitStandIn { server, shared }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// `[("AWS_ENDPOINT_URL_CODECOMMIT", endpoint)]`, to add to the product's environment.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("AWS_ENDPOINT_URL_CODECOMMIT".to_string(), self.endpoint())]
    }

    /// The git root given to [`CodeCommitStandIn::start`] (canonicalised): serve it with the git server.
    pub fn git_root(&self) -> &Path {
        &self.shared.git_root
    }

    /// Where the bare repository of `name` lives: `git_root/v1/repos/NAME`.
    pub fn repo_path(&self, name: &str) -> PathBuf {
        self.shared.repo_path(name)
    }

    /// Every request received, in order, as (action, JSON body) — including those answered with
    /// an injected failure, and those refused by validation.
    pub fn calls(&self) -> Vec<(String, Value)> {
        lock(&self.shared.state).calls.clone()
    }

    /// The bodies of the requests of one action.
    pub fn calls_of(&self, action: &str) -> Vec<Value> {
        lock(&self.shared.state)
            .calls
            .iter()
            .filter(|(a, _)| a == action)
            .map(|(_, b)| b.clone())
            .collect()
    }

    pub fn clear_calls(&self) {
        lock(&self.shared.state).calls.clear();
    }

    /// The next `count` calls of `action` fail with HTTP `status` and
    /// `{"__type": error_type, "message": message}`, without being forwarded or carried out.
    /// Queued after failures already armed for the action.
    pub fn fail_next(
        &self,
        action: &str,
        count: usize,
        error_type: &str,
        status: u16,
        message: &str,
    ) {
        let mut state = lock(&self.shared.state);
        let queue = state.failures.entry(action.to_string()).or_default();
        for _ in 0..count {
            queue.push_back(Injected {
                error_type: error_type.to_string(),
                status,
                message: message.to_string(),
            });
        }
    }

    /// The next call of `action` gets no answer for `hold` (a service that stopped answering); then it
    /// is carried out as usual.
    pub fn hang_next(&self, action: &str, hold: Duration) {
        lock(&self.shared.state)
            .hangs
            .insert(action.to_string(), hold);
    }

    /// The default branch GetRepository would report for `name` now.
    pub fn default_branch(&self, name: &str) -> Option<String> {
        self.shared.effective_default_branch(name)
    }

    /// The description of `name` (from CreateRepository or UpdateRepositoryDescription).
    pub fn description(&self, name: &str) -> Option<String> {
        lock(&self.shared.state)
            .repos
            .get(name)
            .and_then(|r| r.description.clone())
    }

    /// The tags of `name`.
    pub fn tags(&self, name: &str) -> BTreeMap<String, String> {
        lock(&self.shared.state)
            .repos
            .get(name)
            .map(|r| r.tags.clone())
            .unwrap_or_default()
    }

    /// ListRepositories' page size (default 1,000, as CodeCommit).
    pub fn set_list_page_size(&self, n: usize) {
        lock(&self.shared.state).page_size = n.max(1);
    }

    /// Whether an empty repository's first pushed branch becomes its default branch (default on).
    pub fn set_auto_default_branch(&self, on: bool) {
        lock(&self.shared.state).no_auto_default_branch = !on;
    }

    /// Forgets calls, armed failures and all repository state (not the git directories). Use
    /// together with `Moto::reset`.
    pub fn reset(&self) {
        *lock(&self.shared.state) = State {
            page_size: DEFAULT_PAGE_SIZE,
            ..State::default()
        };
    }

    /// Creates a repository as a CreateRepository call would (in moto, in region
    /// `super::moto::REGION`, plus its bare git repository), without recording a call. For
    /// tests whose target repository exists before the product runs. Returns the bare
    /// repository's path; panics if CodeCommit would refuse.
    pub fn create_repository(
        &self,
        name: &str,
        description: Option<&str>,
        tags: &[(&str, &str)],
    ) -> PathBuf {
        let mut body = json!({ "repositoryName": name });
        if let Some(d) = description {
            body["repositoryDescription"] = json!(d);
        }
        if !tags.is_empty() {
            let map: Map<String, Value> = tags
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            body["tags"] = Value::Object(map);
        }
        let ctx = Forward::internal(super::moto::REGION);
        let reply = self.shared.create_repository(&ctx, &body);
        assert_eq!(
            reply.status,
            200,
            "CreateRepository {name} failed: {}",
            String::from_utf8_lossy(&reply.body)
        );
        self.repo_path(name)
    }
}

// ---------------------------------------------------------------------------------------------
// Actions

/// Headers of the client's request to pass on to moto (moto takes the account and region from
/// the `Authorization` header's credential scope).
struct Forward {
    headers: Vec<(String, String)>,
}

impl Forward {
    fn from_request(req: &Request) -> Forward {
        let headers = [
            "authorization",
            "x-amz-date",
            "x-amz-security-token",
            "user-agent",
        ]
        .iter()
        .filter_map(|name| req.header(name).map(|v| (name.to_string(), v.to_string())))
        .collect();
        Forward { headers }
    }

    /// For calls the test itself makes: a well-formed (not valid) signature for `region`.
    fn internal(region: &str) -> Forward {
        let date = super::sigv4_check::utc_stamp(SystemTime::now());
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{}/{region}/codecommit/aws4_request, SignedHeaders=host;x-amz-date, Signature={}",
            super::moto::ACCESS_KEY_ID,
            &date[..8],
            "0".repeat(64)
        );
        Forward {
            headers: vec![
                ("authorization".into(), auth),
                ("x-amz-date".into(), format!("{date}Z")),
            ],
        }
    }
}

impl Shared {
    fn repo_path(&self, name: &str) -> PathBuf {
        self.git_root.join("v1/repos").join(name)
    }

    fn handle(&self, req: &Request) -> Reply {
        if req.method != "POST" || req.path != "/" {
            return Reply::error(
                404,
                "UnknownOperationException",
                &format!("no such resource: {} {}", req.method, req.path),
            );
        }
        let target = req.header("x-amz-target").unwrap_or_default();
        let Some(action) = target.strip_prefix(TARGET_PREFIX) else {
            return Reply::bad(
                "UnknownOperationException",
                &format!("unknown X-Amz-Target {target:?}"),
            );
        };
        let body: Value = if req.body.is_empty() {
            json!({})
        } else {
            match serde_json::from_slice(&req.body) {
                Ok(v) => v,
                Err(e) => {
                    return Reply::bad(
                        "SerializationException",
                        &format!("request body is not JSON: {e}"),
                    )
                }
            }
        };
        let injected = {
            let mut state = lock(&self.state);
            state.calls.push((action.to_string(), body.clone()));
            state.failures.get_mut(action).and_then(VecDeque::pop_front)
        };
        let hang = lock(&self.state).hangs.remove(action);
        if let Some(hold) = hang {
            self.hold(hold);
        }
        if let Some(f) = injected {
            return Reply::error(f.status, &f.error_type, &f.message);
        }
        if !body.is_object() {
            return Reply::bad(
                "SerializationException",
                "request body is not a JSON object",
            );
        }
        let ctx = Forward::from_request(req);
        match action {
            "CreateRepository" => self.create_repository(&ctx, &body),
            "GetRepository" => self.get_repository(&ctx, &body),
            "DeleteRepository" => self.delete_repository(&ctx, &body),
            "UpdateDefaultBranch" => self.update_default_branch(&ctx, &body),
            "UpdateRepositoryDescription" => self.update_description(&ctx, &body),
            "TagResource" => self.tag_resource(&ctx, &body),
            "UntagResource" => self.untag_resource(&ctx, &body),
            "ListTagsForResource" => self.list_tags(&ctx, &body),
            "ListRepositories" => self.list_repositories(&ctx, &body),
            other => Reply::bad(
                "UnknownOperationException",
                &format!("the CodeCommit stand-in does not implement {other}"),
            ),
        }
    }

    /// Holds the calling connection's answer for `hold`.
    fn hold(&self, hold: Duration) {
        let until = Instant::now() + hold;
        let mut state = lock(&self.state);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .hang_ended
                .wait_timeout(state, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Sends one action to moto. Connection failures become a 500 answer.
    fn moto(&self, ctx: &Forward, action: &str, body: &Value) -> Reply {
        let mut headers = ctx.headers.clone();
        headers.push(("content-type".into(), CONTENT_TYPE.into()));
        headers.push(("x-amz-target".into(), format!("{TARGET_PREFIX}{action}")));
        match http_call(self.moto, &headers, body.to_string().as_bytes()) {
            Ok((status, body)) => Reply { status, body },
            Err(e) => Reply::error(
                500,
                "InternalFailure",
                &format!("stand-in could not reach moto: {e}"),
            ),
        }
    }

    /// moto's GetRepository metadata, or the error reply to give.
    fn moto_metadata(&self, ctx: &Forward, name: &str) -> Result<Map<String, Value>, Reply> {
        let reply = self.moto(ctx, "GetRepository", &json!({ "repositoryName": name }));
        if reply.status != 200 {
            return Err(reply);
        }
        match serde_json::from_slice::<Value>(&reply.body) {
            Ok(Value::Object(mut v)) => match v.remove("repositoryMetadata") {
                Some(Value::Object(m)) => Ok(m),
                _ => Err(Reply::error(
                    500,
                    "InternalFailure",
                    "moto's GetRepository answer has no repositoryMetadata",
                )),
            },
            _ => Err(Reply::error(
                500,
                "InternalFailure",
                "moto's GetRepository answer is not JSON",
            )),
        }
    }

    fn create_repository(&self, ctx: &Forward, body: &Value) -> Reply {
        let name = match repo_name(body) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let description = body
            .get("repositoryDescription")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Err(r) = check_description(description.as_deref()) {
            return r;
        }
        let tags = match body.get("tags") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(t) => match tag_map(t) {
                Ok(t) => t,
                Err(r) => return r,
            },
        };
        if let Err(r) = check_tags(&tags) {
            return r;
        }
        let reply = self.moto(ctx, "CreateRepository", body);
        if reply.status != 200 {
            return reply;
        }
        let path = self.repo_path(&name);
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .unwrap_or_else(|e| panic!("remove leftover {}: {e}", path.display()));
        }
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        git(
            &path,
            &["-c", "init.defaultBranch=main", "init", "--quiet", "--bare"],
        )
        .expect("git init --bare");
        git(&path, &["config", "http.receivepack", "true"])
            .expect("git config http.receivepack true");
        install_first_branch_hook(&path);
        lock(&self.state).repos.insert(
            name.clone(),
            RepoState {
                description,
                tags,
                default_branch: None,
                last_modified: None,
            },
        );
        self.patch_answer(&name, reply)
    }

    fn get_repository(&self, ctx: &Forward, body: &Value) -> Reply {
        let name = match repo_name(body) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let reply = self.moto(ctx, "GetRepository", body);
        if reply.status != 200 {
            return reply;
        }
        self.patch_answer(&name, reply)
    }

    fn delete_repository(&self, ctx: &Forward, body: &Value) -> Reply {
        let name = match repo_name(body) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let reply = self.moto(ctx, "DeleteRepository", body);
        if reply.status == 200 {
            lock(&self.state).repos.remove(&name);
            let _ = std::fs::remove_dir_all(self.repo_path(&name));
        }
        reply
    }

    /// Checks the repository exists (in moto) and that the stand-in has its state.
    fn existing(&self, ctx: &Forward, name: &str) -> Result<Map<String, Value>, Reply> {
        let md = self.moto_metadata(ctx, name)?;
        self.know(name, &md);
        Ok(md)
    }

    /// Makes sure there is state for a repository moto has (e.g. one created in moto directly).
    fn know(&self, name: &str, md: &Map<String, Value>) {
        lock(&self.state)
            .repos
            .entry(name.to_string())
            .or_insert_with(|| RepoState {
                description: md
                    .get("repositoryDescription")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                ..RepoState::default()
            });
    }

    fn update_default_branch(&self, ctx: &Forward, body: &Value) -> Reply {
        let name = match repo_name(body) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let branch = match body.get("defaultBranchName") {
            None | Some(Value::Null) => {
                return Reply::bad("BranchNameRequiredException", "A branch name is required.")
            }
            Some(Value::String(b)) if b.is_empty() => {
                return Reply::bad("BranchNameRequiredException", "A branch name is required.")
            }
            Some(Value::String(b)) => b.clone(),
            Some(_) => {
                return Reply::bad(
                    "SerializationException",
                    "defaultBranchName is not a string",
                )
            }
        };
        if let Err(r) = self.existing(ctx, &name) {
            return r;
        }
        let path = self.repo_path(&name);
        let valid = branch.len() <= 256
            && !branch.starts_with('-')
            && git(
                &self.git_root,
                &["check-ref-format", &format!("refs/heads/{branch}")],
            )
            .is_ok();
        if !valid {
            return Reply::bad(
                "InvalidBranchNameException",
                &format!("The specified branch name is not valid: {branch}"),
            );
        }
        let exists = path.is_dir()
            && git(
                &path,
                &[
                    "show-ref",
                    "--verify",
                    "--quiet",
                    &format!("refs/heads/{branch}"),
                ],
            )
            .is_ok();
        if !exists {
            return Reply::bad(
                "BranchDoesNotExistException",
                &format!("Branch {branch} does not exist in {name}"),
            );
        }
        let _ = git(
            &path,
            &["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")],
        );
        let _ = std::fs::remove_file(path.join(AWAITING_FIRST_BRANCH));
        let mut state = lock(&self.state);
        let repo = state.repos.entry(name).or_default();
        repo.default_branch = Some(branch);
        repo.last_modified = Some(now_epoch());
        Reply::ok(json!({}))
    }

    fn update_description(&self, ctx: &Forward, body: &Value) -> Reply {
        let name = match repo_name(body) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let description = match body.get("repositoryDescription") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) => Some(d.clone()),
            Some(_) => {
                return Reply::bad(
                    "SerializationException",
                    "repositoryDescription is not a string",
                )
            }
        };
        if let Err(r) = check_description(description.as_deref()) {
            return r;
        }
        if let Err(r) = self.existing(ctx, &name) {
            return r;
        }
        let mut state = lock(&self.state);
        let repo = state.repos.entry(name).or_default();
        repo.description = description;
        repo.last_modified = Some(now_epoch());
        Reply::ok(json!({}))
    }

    /// The repository an ARN names, checked against moto's `Arn`.
    fn arn_repo(&self, ctx: &Forward, body: &Value) -> Result<String, Reply> {
        let arn =
            match body.get("resourceArn") {
                None | Some(Value::Null) => return Err(Reply::bad(
                    "ResourceArnRequiredException",
                    "A valid Amazon Resource Name (ARN) for a CodeCommit repository is required.",
                )),
                Some(Value::String(a)) if a.is_empty() => return Err(Reply::bad(
                    "ResourceArnRequiredException",
                    "A valid Amazon Resource Name (ARN) for a CodeCommit repository is required.",
                )),
                Some(Value::String(a)) => a.clone(),
                Some(_) => {
                    return Err(Reply::bad(
                        "SerializationException",
                        "resourceArn is not a string",
                    ))
                }
            };
        let parts: Vec<&str> = arn.split(':').collect();
        let shaped = parts.len() == 6
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "codecommit";
        if !shaped {
            return Err(Reply::bad(
                "InvalidResourceArnException",
                &format!("The value for the resource ARN is not valid: {arn}"),
            ));
        }
        let name = parts[5].to_string();
        if let Err(why) = name_problem(&name) {
            return Err(Reply::bad("InvalidRepositoryNameException", why));
        }
        let md = self.existing(ctx, &name)?;
        if md.get("Arn").and_then(Value::as_str) != Some(arn.as_str()) {
            return Err(Reply::bad(
                "RepositoryDoesNotExistException",
                &format!("{arn} does not exist"),
            ));
        }
        Ok(name)
    }

    fn tag_resource(&self, ctx: &Forward, body: &Value) -> Reply {
        let tags = match body.get("tags") {
            None | Some(Value::Null) => {
                return Reply::bad("TagsMapRequiredException", "A map of tags is required.")
            }
            Some(t) => match tag_map(t) {
                Ok(t) => t,
                Err(r) => return r,
            },
        };
        if let Err(r) = check_tags(&tags) {
            return r;
        }
        let name = match self.arn_repo(ctx, body) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let mut state = lock(&self.state);
        let repo = state.repos.entry(name).or_default();
        let mut merged = repo.tags.clone();
        merged.extend(tags);
        if merged.len() > 50 {
            return Reply::bad(
                "TooManyTagsException",
                "The maximum number of tags for a repository (50) has been exceeded.",
            );
        }
        repo.tags = merged;
        Reply::ok(json!({}))
    }

    fn untag_resource(&self, ctx: &Forward, body: &Value) -> Reply {
        let keys: Vec<String> = match body.get("tagKeys") {
            None | Some(Value::Null) => {
                return Reply::bad(
                    "TagKeysListRequiredException",
                    "A list of tag keys is required.",
                )
            }
            Some(Value::Array(keys)) => {
                let mut out = Vec::new();
                for k in keys {
                    match k.as_str() {
                        Some(k) if !k.is_empty() && k.chars().count() <= 128 => {
                            out.push(k.to_string())
                        }
                        _ => {
                            return Reply::bad(
                                "InvalidTagKeysListException",
                                "The list of tags is not valid.",
                            )
                        }
                    }
                }
                out
            }
            Some(_) => {
                return Reply::bad(
                    "InvalidTagKeysListException",
                    "The list of tags is not valid.",
                )
            }
        };
        if keys.iter().any(|k| k.starts_with("aws:")) {
            return Reply::bad(
                "InvalidSystemTagUsageException",
                "The tag key cannot start with aws:.",
            );
        }
        let name = match self.arn_repo(ctx, body) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let mut state = lock(&self.state);
        let repo = state.repos.entry(name).or_default();
        for k in keys {
            repo.tags.remove(&k);
        }
        Reply::ok(json!({}))
    }

    fn list_tags(&self, ctx: &Forward, body: &Value) -> Reply {
        let name = match self.arn_repo(ctx, body) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let tags = lock(&self.state)
            .repos
            .get(&name)
            .map(|r| r.tags.clone())
            .unwrap_or_default();
        Reply::ok(json!({ "tags": tags }))
    }

    fn list_repositories(&self, ctx: &Forward, body: &Value) -> Reply {
        let sort_by = match body.get("sortBy").and_then(Value::as_str) {
            None | Some("repositoryName") => "repositoryName",
            Some("lastModifiedDate") => "lastModifiedDate",
            Some(other) => {
                return Reply::bad(
                    "InvalidSortByException",
                    &format!("The specified sort by value is not valid: {other}"),
                )
            }
        };
        let descending = match body.get("order").and_then(Value::as_str) {
            None | Some("ascending") => false,
            Some("descending") => true,
            Some(other) => {
                return Reply::bad(
                    "InvalidOrderException",
                    &format!("The specified sort order is not valid: {other}"),
                )
            }
        };
        let start = match body.get("nextToken").and_then(Value::as_str) {
            None => 0,
            Some(token) => match token
                .strip_prefix("standin-offset-")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) => n,
                None => {
                    return Reply::bad(
                        "InvalidContinuationTokenException",
                        "The specified continuation token is not valid.",
                    )
                }
            },
        };
        let (names, page_size) = {
            let state = lock(&self.state);
            (
                state.repos.keys().cloned().collect::<Vec<_>>(),
                state.page_size,
            )
        };
        let mut found = Vec::new();
        for name in names {
            match self.moto_metadata(ctx, &name) {
                Ok(md) => {
                    let id = md.get("repositoryId").cloned().unwrap_or(Value::Null);
                    let modified = self
                        .last_modified(&name)
                        .or_else(|| md.get("lastModifiedDate").and_then(epoch_of))
                        .unwrap_or(0.0);
                    found.push((name, id, modified));
                }
                Err(r) if is_error(&r, "RepositoryDoesNotExistException") => {}
                Err(r) => return r,
            }
        }
        if sort_by == "lastModifiedDate" {
            found.sort_by(|a, b| a.2.total_cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
        } else {
            found.sort_by(|a, b| a.0.cmp(&b.0));
        }
        if descending {
            found.reverse();
        }
        if start > found.len() {
            return Reply::bad(
                "InvalidContinuationTokenException",
                "The specified continuation token is not valid.",
            );
        }
        let end = (start + page_size).min(found.len());
        let page: Vec<Value> = found[start..end]
            .iter()
            .map(|(name, id, _)| json!({ "repositoryName": name, "repositoryId": id }))
            .collect();
        let mut out = json!({ "repositories": page });
        if end < found.len() {
            out["nextToken"] = json!(format!("standin-offset-{end}"));
        }
        Reply::ok(out)
    }

    fn last_modified(&self, name: &str) -> Option<f64> {
        lock(&self.state)
            .repos
            .get(name)
            .and_then(|r| r.last_modified)
    }

    /// Rewrites a successful moto answer `{"repositoryMetadata": {...}}` the way CodeCommit
    /// would answer, with the stand-in's state merged in.
    fn patch_answer(&self, name: &str, reply: Reply) -> Reply {
        let mut answer: Value = match serde_json::from_slice(&reply.body) {
            Ok(v) => v,
            Err(_) => return Reply::error(500, "InternalFailure", "moto's answer is not JSON"),
        };
        let Some(Value::Object(md)) = answer.get_mut("repositoryMetadata") else {
            return Reply::error(
                500,
                "InternalFailure",
                "moto's answer has no repositoryMetadata",
            );
        };
        self.know(name, md);
        md.retain(|_, v| !v.is_null());
        for key in ["creationDate", "lastModifiedDate"] {
            if let Some(epoch) = md.get(key).and_then(epoch_of) {
                md.insert(key.to_string(), json!(epoch));
            }
        }
        let (description, modified) = {
            let state = lock(&self.state);
            let repo = state.repos.get(name).cloned().unwrap_or_default();
            (repo.description, repo.last_modified)
        };
        match description {
            Some(d) => md.insert("repositoryDescription".into(), json!(d)),
            None => md.remove("repositoryDescription"),
        };
        if let Some(m) = modified {
            md.insert("lastModifiedDate".into(), json!(m));
        }
        match self.effective_default_branch(name) {
            Some(b) => md.insert("defaultBranch".into(), json!(b)),
            None => md.remove("defaultBranch"),
        };
        Reply::ok(answer)
    }

    /// The default branch: the one set by UpdateDefaultBranch, else (when enabled) the one an
    /// empty repository's first push made default (see [`POST_RECEIVE_HOOK`]).
    fn effective_default_branch(&self, name: &str) -> Option<String> {
        {
            let state = lock(&self.state);
            let repo = state.repos.get(name)?;
            if repo.default_branch.is_some() || state.no_auto_default_branch {
                return repo.default_branch.clone();
            }
        }
        let path = self.repo_path(name);
        if !path.is_dir() || path.join(AWAITING_FIRST_BRANCH).exists() {
            return None;
        }
        let head = git(&path, &["symbolic-ref", "--quiet", "HEAD"]).ok()?;
        let head = head.trim();
        git(&path, &["rev-parse", "--quiet", "--verify", head]).ok()?;
        head.strip_prefix("refs/heads/").map(str::to_string)
    }
}

/// Marker file in a bare repository that no branch has been pushed to yet.
const AWAITING_FIRST_BRANCH: &str = "standin-awaiting-first-branch";

/// `hooks/post-receive` of every bare repository: the first branch of the first push that
/// carries one becomes `HEAD` (CodeCommit's default branch). Runs in the repository (git
/// changes to `$GIT_DIR` for hooks of bare repositories); reads all of stdin.
const POST_RECEIVE_HOOK: &str = r#"#!/bin/sh
# Written by the CodeCommit test stand-in: as in CodeCommit, the first branch pushed to an empty
# repository becomes its default branch.
first=
while read -r old new ref; do
    case "$ref:$new" in
        refs/heads/*:*[!0]*) [ -z "$first" ] && first=$ref ;;
    esac
done
if [ -n "$first" ] && [ -f standin-awaiting-first-branch ]; then
    git symbolic-ref HEAD "$first" && rm -f standin-awaiting-first-branch
fi
exit 0
"#;

fn is_error(reply: &Reply, error_type: &str) -> bool {
    serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|v| {
            v.get("__type")
                .and_then(Value::as_str)
                .map(|t| t.rsplit('#').next() == Some(error_type))
        })
        .unwrap_or(false)
}

/// Why `name` is not a valid CodeCommit repository name, if it is not.
fn name_problem(name: &str) -> Result<(), &'static str> {
    const MSG: &str = "The repository name is not valid. Repository names can be any valid combination of letters, \
                       numbers, periods, underscores, and dashes between 1 and 100 characters in length. Names are \
                       case sensitive. Repository names cannot end in .git.";
    let chars_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !chars_ok || name.len() > 100 || name.ends_with(".git") || name == "." || name == ".." {
        return Err(MSG);
    }
    Ok(())
}

/// The `repositoryName` member, validated.
fn repo_name(body: &Value) -> Result<String, Reply> {
    match body.get("repositoryName") {
        None | Some(Value::Null) => Err(Reply::bad(
            "RepositoryNameRequiredException",
            "A repository name is required.",
        )),
        Some(Value::String(n)) if n.is_empty() => Err(Reply::bad(
            "RepositoryNameRequiredException",
            "A repository name is required.",
        )),
        Some(Value::String(n)) => {
            name_problem(n).map_err(|why| Reply::bad("InvalidRepositoryNameException", why))?;
            Ok(n.clone())
        }
        Some(_) => Err(Reply::bad(
            "SerializationException",
            "repositoryName is not a string",
        )),
    }
}

fn check_description(description: Option<&str>) -> Result<(), Reply> {
    match description {
        Some(d) if d.chars().count() > 1000 => Err(Reply::bad(
            "InvalidRepositoryDescriptionException",
            "The specified repository description is not valid. Repository descriptions are limited to 1,000 characters.",
        )),
        _ => Ok(()),
    }
}

fn tag_map(value: &Value) -> Result<BTreeMap<String, String>, Reply> {
    let Value::Object(map) = value else {
        return Err(Reply::bad(
            "InvalidTagsMapException",
            "The map of tags is not valid.",
        ));
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let Some(v) = v.as_str() else {
            return Err(Reply::bad(
                "InvalidTagsMapException",
                "The map of tags is not valid.",
            ));
        };
        out.insert(k.clone(), v.to_string());
    }
    Ok(out)
}

fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), Reply> {
    if tags.len() > 50 {
        return Err(Reply::bad(
            "TooManyTagsException",
            "The maximum number of tags for a repository (50) has been exceeded.",
        ));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(Reply::bad(
                "InvalidTagsMapException",
                "The map of tags is not valid.",
            ));
        }
        if k.starts_with("aws:") {
            return Err(Reply::bad(
                "InvalidSystemTagUsageException",
                "The tag key cannot start with aws:.",
            ));
        }
    }
    Ok(())
}

fn now_epoch() -> f64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time after 1970");
    // Milliseconds, as CodeCommit reports.
    (d.as_millis() as f64) / 1000.0
}

/// Epoch seconds of a JSON timestamp: a number, or an RFC 3339 string such as moto's
/// `2024-06-01T12:34:56.789Z` (also `+00:00`).
fn epoch_of(value: &Value) -> Option<f64> {
    if let Some(n) = value.as_f64() {
        return Some(n);
    }
    let at = time::OffsetDateTime::parse(
        value.as_str()?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    let millis = at.unix_timestamp_nanos() / 1_000_000;
    Some(millis as f64 / 1000.0)
}

fn install_first_branch_hook(repo: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let hook = repo.join("hooks/post-receive");
    std::fs::create_dir_all(repo.join("hooks")).expect("create the hooks directory");
    std::fs::write(&hook, POST_RECEIVE_HOOK).expect("write the post-receive hook");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))
        .expect("make the post-receive hook executable");
    std::fs::write(repo.join(AWAITING_FIRST_BRANCH), b"").expect("write the first-branch marker");
}

/// Runs git in `dir` without any user or system configuration; stdout on success.
fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir).args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GIT_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_DIR", dir);
    let out = cmd.output().map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

struct Request {
    method: String,
    path: String,
    http10: bool,
    /// Names lower-cased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn wants_close(&self) -> bool {
        let conn = self
            .header("connection")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if self.http10 {
            !conn.contains("keep-alive")
        } else {
            conn.split(',').any(|t| t.trim() == "close")
        }
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared, stop: &Stop) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        if stop.requested() {
            break;
        }
        let req = match read_request(&mut reader, &mut writer) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(_) => {
                let _ = write_response(
                    &mut writer,
                    shared,
                    &Reply::bad("SerializationException", "malformed HTTP request"),
                    true,
                );
                break;
            }
        };
        let reply = shared.handle(&req);
        let close = req.wants_close();
        if write_response(&mut writer, shared, &reply, close).is_err() || close {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

fn write_response(
    w: &mut TcpStream,
    shared: &Shared,
    reply: &Reply,
    close: bool,
) -> io::Result<()> {
    let n = shared.next_request_id.fetch_add(1, Ordering::SeqCst);
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {CONTENT_TYPE}\r\nx-amzn-RequestId: 5e1ec7ed-0000-4000-8000-{n:012x}\r\nContent-Length: {}\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    );
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&reply.body);
    w.write_all(&bytes)?;
    w.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

fn read_line<R: BufRead>(r: &mut R) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r.by_ref().take(64 * 1024).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if !buf.ends_with(b"\n") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "HTTP line too long or truncated",
        ));
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// A message head: the request or status line, and the headers with lower-cased names.
type Head = (String, Vec<(String, String)>);

/// Reads a message head. `Ok(None)` at a clean EOF before it.
fn read_head<R: BufRead>(r: &mut R) -> io::Result<Option<Head>> {
    let first = loop {
        match read_line(r)? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "EOF in headers"))?;
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok(Some((first, headers)))
}

/// Reads a body framed by `headers` (chunked, Content-Length, or — for responses only — EOF).
fn read_body<R: BufRead>(
    r: &mut R,
    headers: &[(String, String)],
    until_eof: bool,
) -> io::Result<Vec<u8>> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let chunked =
        get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        loop {
            let line = read_line(r)?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "EOF in chunked body")
            })?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                while let Some(l) = read_line(r)? {
                    if l.is_empty() {
                        break;
                    }
                }
                return Ok(body);
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            read_line(r)?;
        }
    }
    match get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body)?;
        }
        None if until_eof => {
            r.read_to_end(&mut body)?;
        }
        None => {}
    }
    Ok(body)
}

fn read_request<R: BufRead>(r: &mut R, w: &mut TcpStream) -> io::Result<Option<Request>> {
    let Some((line, headers)) = read_head(r)? else {
        return Ok(None);
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad request line",
        ));
    };
    let expects_continue = headers
        .iter()
        .any(|(n, v)| n == "expect" && v.eq_ignore_ascii_case("100-continue"));
    if expects_continue {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let body = read_body(r, &headers, false)?;
    Ok(Some(Request {
        method: method.to_string(),
        path: target.split('?').next().unwrap_or("/").to_string(),
        http10: version == "HTTP/1.0",
        headers,
        body,
    }))
}

/// One `POST /` to `addr` on a fresh connection: (status, body).
fn http_call(
    addr: SocketAddr,
    headers: &[(String, String)],
    body: &[u8],
) -> io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes)?;
    let mut reader = BufReader::new(stream);
    let (status_line, headers) = read_head(&mut reader)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no response"))?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
    let body = read_body(&mut reader, &headers, true)?;
    Ok((status, body))
}
