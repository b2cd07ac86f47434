//! The AWS CodeCommit target: repositories found or created through the API (with the source's
//! description, and tags naming the source), git over HTTPS signed with the SDK's current credentials
//! (recomputed for every connection, never stored), the default branch and description kept in step,
//! and CodeCommit's rules: names `[A-Za-z0-9._-]{1,100}`, no branch named by 40 hex characters.

pub mod git_auth;

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_codecommit::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_codecommit::Client;
use tokio::runtime::Handle;

use super::remote::RemoteMirror;
use super::{Mirror, Opened, TargetError};
use crate::adoption::SourceRecord;
use crate::git::receive_pack::PushOutcome;
use crate::git::upload_pack::PackForm;
use crate::git::{Endpoint, GitError};
use crate::plan::Command;
use crate::refs::{ObjectId, RefMap};
use crate::source::SourceRepo;
use git_auth::AwsKeys;

/// The tag that names the source repository on every mirror created.
pub const SOURCE_TAG: &str = "repo-mirror:source";
/// CodeCommit's limit on a repository description.
const MAX_DESCRIPTION: usize = 1000;
/// How long a just-created repository may take to answer git.
const VISIBILITY_WAIT: Duration = Duration::from_secs(30);

/// CodeCommit in one region.
#[derive(Clone)]
pub struct CodeCommit {
    client: Client,
    credentials: aws_credential_types::provider::SharedCredentialsProvider,
    region: String,
    git_url_template: String,
}

impl std::fmt::Debug for CodeCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeCommit")
            .field("region", &self.region)
            .field("git_url_template", &self.git_url_template)
            .finish()
    }
}

impl CodeCommit {
    /// From a loaded AWS configuration; `git_url_template` may hold `{region}` and must hold `{name}`.
    pub fn new(
        config: &aws_config::SdkConfig,
        git_url_template: &str,
    ) -> Result<Self, TargetError> {
        let region = config.region().map(|r| r.to_string()).ok_or_else(|| {
            TargetError::Api("no AWS region is configured (set AWS_REGION)".into())
        })?;
        let credentials = config
            .credentials_provider()
            .ok_or_else(|| TargetError::Api("no AWS credentials provider is configured".into()))?;
        Ok(CodeCommit {
            client: Client::new(config),
            credentials,
            git_url_template: git_url_template.replace("{region}", &region),
            region,
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Finds the repository; when `create` is set (a real run), creates it when missing, with the
    /// source's description and its source record. Nothing else is written here: description, record
    /// and default branch are kept in step only after the refs (see [`Mirror`]).
    pub fn open(
        self: &Arc<Self>,
        handle: &Handle,
        name: &str,
        source: &SourceRepo,
        create: bool,
        deadline: Option<Instant>,
        stall: &crate::git::StallGuard,
    ) -> Result<Option<Opened>, TargetError> {
        let cancellation = stall.cancellation().clone();
        let metadata = cancellation.block_on(handle, self.find(name))??;
        let (metadata, created) = match metadata {
            Some(metadata) => (metadata, false),
            None if create => (
                cancellation.block_on(handle, self.create(name, source))??,
                true,
            ),
            None => return Ok(None),
        };
        let connect = {
            let codecommit = self.clone();
            let handle = handle.clone();
            let name = name.to_owned();
            let stall = stall.clone();
            move || -> Result<Endpoint, TargetError> {
                let url = codecommit.git_url_template.replace("{name}", &name);
                let credentials = stall
                    .cancellation()
                    .block_on(&handle, codecommit.git_credentials(&url))??;
                Ok(Endpoint {
                    url,
                    credentials: Some(credentials),
                    deadline,
                    stall: stall.clone(),
                })
            }
        };
        // A repository created a moment ago may not answer git yet: retry within a bound.
        let started = Instant::now();
        let mut wait = Duration::from_millis(250);
        let remote = loop {
            match RemoteMirror::open_with(Box::new(connect.clone())) {
                Ok(remote) => break remote,
                Err(err)
                    if created && is_not_found(&err) && started.elapsed() < VISIBILITY_WAIT =>
                {
                    cancellation.check()?;
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(4));
                }
                Err(err) => return Err(err),
            }
        };
        let mirror = CodeCommitMirror {
            remote,
            codecommit: self.clone(),
            handle: handle.clone(),
            cancellation,
            name: name.to_owned(),
            // A repository created now carries the record it was created with.
            record: created.then(|| SourceRecord::Names(source_record_url(source))),
            metadata,
        };
        Ok(Some(Opened {
            mirror: Box::new(mirror),
            created,
        }))
    }

    async fn find(&self, name: &str) -> Result<Option<Metadata>, TargetError> {
        match self
            .client
            .get_repository()
            .repository_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(Some(Metadata::from(out.repository_metadata()))),
            Err(err) if err.code() == Some("RepositoryDoesNotExistException") => Ok(None),
            Err(err) => Err(api_error("GetRepository", name, &err)),
        }
    }

    async fn create(&self, name: &str, source: &SourceRepo) -> Result<Metadata, TargetError> {
        let mut request = self
            .client
            .create_repository()
            .repository_name(name)
            .tags(SOURCE_TAG, source_record_url(source));
        if let Some(description) = description_of(source.description.as_deref()) {
            request = request.repository_description(description);
        }
        match request.send().await {
            Ok(out) => Ok(Metadata::from(out.repository_metadata())),
            // Created meanwhile (another run, or an earlier attempt): use it.
            Err(err) if err.code() == Some("RepositoryNameExistsException") => self
                .find(name)
                .await?
                .ok_or_else(|| api_error("CreateRepository", name, &err)),
            Err(err) => Err(api_error("CreateRepository", name, &err)),
        }
    }

    /// The source record: the `repo-mirror:source` tag.
    async fn source_tag(&self, name: &str, arn: &str) -> Result<SourceRecord, TargetError> {
        let tags = self
            .client
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(|err| api_error("ListTagsForResource", name, &err))?;
        Ok(match tags.tags().and_then(|t| t.get(SOURCE_TAG)) {
            Some(url) => SourceRecord::Names(url.clone()),
            None => SourceRecord::Missing,
        })
    }

    async fn tag_source(&self, name: &str, arn: &str, url: &str) -> Result<(), TargetError> {
        self.client
            .tag_resource()
            .resource_arn(arn)
            .tags(SOURCE_TAG, url)
            .send()
            .await
            .map_err(|err| api_error("TagResource", name, &err))?;
        Ok(())
    }

    async fn set_description(
        &self,
        name: &str,
        description: Option<String>,
    ) -> Result<(), TargetError> {
        self.client
            .update_repository_description()
            .repository_name(name)
            .set_repository_description(description)
            .send()
            .await
            .map_err(|err| api_error("UpdateRepositoryDescription", name, &err))?;
        Ok(())
    }

    async fn set_default_branch(&self, name: &str, branch: &str) -> Result<(), TargetError> {
        self.client
            .update_default_branch()
            .repository_name(name)
            .default_branch_name(branch)
            .send()
            .await
            .map_err(|err| api_error("UpdateDefaultBranch", name, &err))?;
        Ok(())
    }

    /// Fresh SigV4 git credentials for `url`, from the SDK's current credentials (refreshed as they expire).
    async fn git_credentials(&self, url: &str) -> Result<crate::git::Credentials, TargetError> {
        let keys = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|err| {
                TargetError::Api(format!(
                    "no AWS credentials for CodeCommit git: {}",
                    DisplayErrorContext(&err)
                ))
            })?;
        let keys = AwsKeys {
            access_key_id: keys.access_key_id().to_owned(),
            secret_access_key: keys.secret_access_key().to_owned(),
            session_token: keys.session_token().map(str::to_owned),
        };
        let (host, path) = host_and_path(url).ok_or_else(|| {
            TargetError::Git(GitError::Handshake {
                url: url.to_owned(),
                message: "not an http(s) URL with a host and a path".into(),
                status: None,
            })
        })?;
        Ok(git_auth::git_credentials(
            &keys,
            &self.region,
            host,
            path,
            time::OffsetDateTime::now_utc(),
        ))
    }
}

/// What CodeCommit says about a repository.
#[derive(Debug, Clone, Default)]
struct Metadata {
    arn: Option<String>,
    description: Option<String>,
    default_branch: Option<String>,
}

impl From<Option<&aws_sdk_codecommit::types::RepositoryMetadata>> for Metadata {
    fn from(metadata: Option<&aws_sdk_codecommit::types::RepositoryMetadata>) -> Self {
        metadata
            .map(|m| Metadata {
                arn: m.arn().map(str::to_owned),
                description: m.repository_description().map(str::to_owned),
                default_branch: m.default_branch().map(str::to_owned),
            })
            .unwrap_or_default()
    }
}

/// A CodeCommit repository: git through the signed remote, the default branch through the API.
struct CodeCommitMirror {
    remote: RemoteMirror,
    codecommit: Arc<CodeCommit>,
    handle: Handle,
    /// Every API call ends when the repository is abandoned.
    cancellation: crate::cancel::Cancellation,
    name: String,
    metadata: Metadata,
    /// The source record, once known.
    record: Option<SourceRecord>,
}

impl CodeCommitMirror {
    fn arn(&self) -> Result<&str, TargetError> {
        self.metadata
            .arn
            .as_deref()
            .ok_or_else(|| TargetError::CodeCommit {
                operation: "GetRepository",
                repository: self.name.clone(),
                detail: "the answer carries no repository ARN".into(),
            })
    }
}

impl Mirror for CodeCommitMirror {
    fn refs(&self) -> &RefMap {
        self.remote.refs()
    }

    fn pack_form(&self) -> PackForm {
        self.remote.pack_form()
    }

    fn is_ancestor(&self, old: ObjectId, new: ObjectId) -> Option<bool> {
        self.remote.is_ancestor(old, new)
    }

    fn apply(
        &mut self,
        commands: &[Command],
        pack: Option<&mut dyn Read>,
    ) -> Result<PushOutcome, TargetError> {
        self.remote.apply(commands, pack)
    }

    fn reread_refs(&mut self) -> Result<&RefMap, TargetError> {
        self.remote.reread_refs()
    }

    /// UpdateDefaultBranch when the source's default differs and the branch exists in the mirror.
    fn set_head(&mut self, branch: &str) -> Result<(), TargetError> {
        let Some(short) = branch.strip_prefix(crate::refs::HEADS) else {
            return Ok(());
        };
        if self.metadata.default_branch.as_deref() == Some(short)
            || !self.remote.refs().contains_key(branch)
        {
            return Ok(());
        }
        self.cancellation.block_on(
            &self.handle,
            self.codecommit.set_default_branch(&self.name, short),
        )??;
        self.metadata.default_branch = Some(short.to_owned());
        Ok(())
    }

    fn source_record(&mut self) -> Result<SourceRecord, TargetError> {
        if let Some(record) = &self.record {
            return Ok(record.clone());
        }
        let arn = self.arn()?.to_owned();
        let record = self
            .cancellation
            .block_on(&self.handle, self.codecommit.source_tag(&self.name, &arn))??;
        self.record = Some(record.clone());
        Ok(record)
    }

    fn write_source_record(&mut self, source_url: &str) -> Result<(), TargetError> {
        let arn = self.arn()?.to_owned();
        self.cancellation.block_on(
            &self.handle,
            self.codecommit.tag_source(&self.name, &arn, source_url),
        )??;
        self.record = Some(SourceRecord::Names(source_url.to_owned()));
        Ok(())
    }

    fn keep_description(&mut self, description: Option<&str>) -> Result<(), TargetError> {
        let wanted = description_of(description);
        if wanted.as_deref().unwrap_or("") == self.metadata.description.as_deref().unwrap_or("") {
            return Ok(());
        }
        self.cancellation.block_on(
            &self.handle,
            self.codecommit.set_description(&self.name, wanted.clone()),
        )??;
        self.metadata.description = wanted;
        Ok(())
    }
}

/// Whether git said the repository does not exist (yet): the one failure worth waiting out after a create.
fn is_not_found(err: &TargetError) -> bool {
    matches!(err, TargetError::Git(git) if git.is_not_found())
}

/// The URL a mirror's record names: the source's clone URL without credentials.
fn source_record_url(source: &SourceRepo) -> String {
    crate::adoption::source_url(&source.clone_url)
}

/// A source's description as CodeCommit takes it: trimmed, at most its limit, none when blank.
fn description_of(description: Option<&str>) -> Option<String> {
    let description = description.map(str::trim).filter(|d| !d.is_empty())?;
    Some(description.chars().take(MAX_DESCRIPTION).collect())
}

/// `host[:port]` and path of an http(s) URL.
pub fn host_and_path(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let slash = rest.find('/')?;
    let (host, path) = rest.split_at(slash);
    (!host.is_empty()).then_some((host, path))
}

fn api_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &'static str,
    name: &str,
    err: &E,
) -> TargetError {
    let detail = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(err).to_string(),
    };
    TargetError::CodeCommit {
        operation,
        repository: name.to_owned(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_and_path() {
        assert_eq!(
            host_and_path("https://git-codecommit.eu-west-2.amazonaws.com/v1/repos/whitehall"),
            Some((
                "git-codecommit.eu-west-2.amazonaws.com",
                "/v1/repos/whitehall"
            ))
        );
        assert_eq!(
            host_and_path("http://127.0.0.1:8443/v1/repos/x"),
            Some(("127.0.0.1:8443", "/v1/repos/x"))
        );
        assert_eq!(host_and_path("ftp://x/y"), None);
        assert_eq!(host_and_path("https://host-only"), None);
    }

    #[test]
    fn descriptions_are_trimmed_to_codecommit_limits() {
        assert_eq!(description_of(None), None);
        assert_eq!(description_of(Some("  ")), None);
        let long = "x".repeat(2000);
        assert_eq!(description_of(Some(&long)).map(|d| d.len()), Some(1000));
    }
}
