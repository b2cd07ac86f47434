//! The `dir:PATH` target: bare repositories `PATH/NAME.git` written with gix and no git binary, the
//! way git's receive-pack writes them.
//!
//! A run that may change the mirror holds its repository lock ([`lock`]) from opening to the end.
//! The forwarded pack is indexed straight into `objects/pack`, in bounded memory, by
//! [`crate::git::index_pack`], which flushes pack, index and directory to disk. Before any ref moves,
//! every new ref value is checked to be connected ([`connectivity`]); a pack that fails the check is
//! taken out again and no ref moves. Then the ref edits are applied in one gix ref transaction, each
//! checked against the value the plan saw.

pub mod connectivity;
pub mod lock;
pub mod record;

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::Target;

use super::{Mirror, TargetError};
use crate::adoption::SourceRecord;
use crate::cancel::Cancellation;
use crate::git::index_pack::{index_pack, IndexPackError, IndexedPack, Limits};
use crate::git::receive_pack::PushOutcome;
use crate::git::upload_pack::PackForm;
use crate::plan::Command;
use crate::refs::{ObjectId, RefMap, RefValue};
use connectivity::{check_connected, ConnectivityError, NewTip};
use lock::{LockError, RepositoryLock};

/// A local bare repository.
pub struct LocalMirror {
    path: PathBuf,
    repo: gix::Repository,
    refs: RefMap,
    /// Values of refs the mirror held when opened or that this run wrote: connected, so the
    /// connectivity check stops at them.
    connected: HashSet<ObjectId>,
    /// Held while the mirror may be written; released when the mirror is dropped.
    lock: Option<RepositoryLock>,
    /// What a pack may make the indexer do.
    limits: Limits,
    /// Stops indexing and the connectivity walk once the repository is abandoned or its deadline
    /// passes.
    cancellation: Cancellation,
}

fn local_error(path: &Path, message: impl std::fmt::Display) -> TargetError {
    TargetError::Local {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Where the mirror of `name` lives under `root`.
pub fn mirror_path(root: &Path, name: &str) -> PathBuf {
    root.join(format!("{name}.git"))
}

impl LocalMirror {
    /// Opens `root/NAME.git`. `writable` says the run may change the mirror: it is then created
    /// when missing and its repository lock taken (read-only runs take no lock and get `None` for a
    /// missing mirror). The boolean says whether it was created now.
    pub fn open(
        root: &Path,
        name: &str,
        writable: bool,
        limits: Limits,
        cancellation: Cancellation,
    ) -> Result<Option<(LocalMirror, bool)>, TargetError> {
        let path = mirror_path(root, name);
        let (repo, created) = if path.exists() {
            (
                gix::open(&path)
                    .map_err(|err| local_error(&path, format!("not a git repository: {err}")))?,
                false,
            )
        } else if writable {
            std::fs::create_dir_all(root).map_err(|err| local_error(root, err))?;
            (
                gix::init_bare(&path).map_err(|err| local_error(&path, err))?,
                true,
            )
        } else {
            return Ok(None);
        };
        let lock = if writable {
            Some(RepositoryLock::acquire(&path).map_err(|err| match err {
                LockError::Held(held) => TargetError::Locked(held),
                other => local_error(&path, other),
            })?)
        } else {
            None
        };
        let mut mirror = LocalMirror {
            path,
            repo,
            refs: RefMap::new(),
            connected: HashSet::new(),
            lock,
            limits,
            cancellation,
        };
        mirror.reread_refs()?;
        mirror.connected = mirror.refs.values().map(|value| value.oid).collect();
        Ok(Some((mirror, created)))
    }

    fn read_refs(&self) -> Result<RefMap, TargetError> {
        let mut refs = RefMap::new();
        let platform = self
            .repo
            .references()
            .map_err(|err| local_error(&self.path, err))?;
        for reference in platform.all().map_err(|err| local_error(&self.path, err))? {
            let reference = reference.map_err(|err| local_error(&self.path, err))?;
            if let Some(id) = reference.target().try_id() {
                refs.insert(
                    reference.name().as_bstr().to_string(),
                    RefValue::direct(id.to_owned()),
                );
            }
        }
        Ok(refs)
    }

    /// Makes the repository ready for this run's first write: clears what a killed run left there
    /// (see [`lock`]). Writing without the repository lock is refused.
    pub fn prepare_to_write(&mut self) -> Result<(), TargetError> {
        match self.lock.as_mut() {
            Some(lock) => lock
                .clear_leftovers()
                .map_err(|err| local_error(&self.path, err)),
            None => Err(local_error(
                &self.path,
                "opened read-only: the repository lock is not held",
            )),
        }
    }

    /// Stores the pack, indexed and flushed to disk, in `objects/pack` (in bounded memory, see
    /// [`crate::git::index_pack`]), then reads `pack` to its end. Returns the pack stored, if it
    /// had objects.
    fn index_pack(&self, pack: &mut dyn Read) -> Result<Option<IndexedPack>, TargetError> {
        let pack_dir = self.repo.objects.store_ref().path().join("pack");
        std::fs::create_dir_all(&pack_dir).map_err(|err| local_error(&pack_dir, err))?;
        let indexed = index_pack(pack, &pack_dir, &self.limits, &self.cancellation).map_err(
            |err| match err {
                IndexPackError::Cancelled(cancelled) => TargetError::Cancelled(cancelled),
                other => local_error(
                    &self.path,
                    format!("the pack could not be indexed: {other}"),
                ),
            },
        )?;
        // Reading to the end checks the trailer in the caller's pack stream and leaves the source's
        // response fully consumed for its next request.
        let drained = io::copy(pack, &mut io::sink()).map_err(|err| local_error(&self.path, err));
        if let Err(err) = drained {
            self.remove_pack(indexed.as_ref());
            return Err(err);
        }
        Ok(indexed)
    }

    /// Takes a pack this run stored out again (best effort: the reason it is refused is what gets
    /// reported; a pack left behind holds objects nothing names, which git gc removes).
    fn remove_pack(&self, indexed: Option<&IndexedPack>) {
        if let Some(indexed) = indexed {
            let _ = indexed.remove_new_files();
        }
    }

    /// Checks that every new value `commands` give a ref is connected (see [`connectivity`]).
    fn check_connected(&self, commands: &[Command]) -> Result<(), TargetError> {
        let tips: Vec<NewTip> = commands
            .iter()
            .filter(|command| !command.is_delete())
            .map(|command| NewTip {
                name: command.name.clone(),
                id: command.new,
            })
            .collect();
        check_connected(&self.repo, &tips, &self.connected, &self.cancellation).map_err(
            |source| match source {
                ConnectivityError::Cancelled(cancelled) => TargetError::Cancelled(cancelled),
                source => TargetError::Incomplete {
                    path: self.path.display().to_string(),
                    source,
                },
            },
        )?;
        Ok(())
    }
}

impl Mirror for LocalMirror {
    fn refs(&self) -> &RefMap {
        &self.refs
    }

    fn pack_form(&self) -> PackForm {
        // Not thin: the pack is indexed as it stands, with no bases looked up outside it.
        PackForm {
            ofs_delta: true,
            thin: false,
        }
    }

    fn is_ancestor(&self, old: ObjectId, new: ObjectId) -> Option<bool> {
        if !self.repo.has_object(old) || !self.repo.has_object(new) {
            return None;
        }
        // No merge base at all (unrelated histories) means not an ancestor.
        let base = self.repo.merge_base(old, new).ok()?;
        Some(base.map(|id| id.detach()) == Some(old))
    }

    fn apply(
        &mut self,
        commands: &[Command],
        pack: Option<&mut dyn Read>,
    ) -> Result<PushOutcome, TargetError> {
        self.prepare_to_write()?;
        let indexed = match pack {
            Some(pack) => self.index_pack(pack)?,
            None => None,
        };
        if let Err(err) = self.check_connected(commands) {
            self.remove_pack(indexed.as_ref());
            return Err(err);
        }
        let mut edits = Vec::with_capacity(commands.len());
        for command in commands {
            let name = command.name.as_str().try_into().map_err(|err| {
                local_error(
                    &self.path,
                    format!("invalid ref name {:?}: {err}", command.name),
                )
            })?;
            let expected = if command.old.is_null() {
                PreviousValue::MustNotExist
            } else {
                PreviousValue::MustExistAndMatch(Target::Object(command.old))
            };
            let change = if command.is_delete() {
                Change::Delete {
                    expected,
                    log: RefLog::AndReference,
                }
            } else {
                Change::Update {
                    log: LogChange {
                        mode: RefLog::AndReference,
                        force_create_reflog: false,
                        message: "repo-mirror".into(),
                    },
                    expected,
                    new: Target::Object(command.new),
                }
            };
            edits.push(RefEdit {
                change,
                name,
                deref: false,
            });
        }
        self.repo
            .edit_references(edits)
            .map_err(|err| local_error(&self.path, format!("the ref transaction failed: {err}")))?;
        self.connected.extend(
            commands
                .iter()
                .filter(|command| !command.is_delete())
                .map(|command| command.new),
        );
        Ok(PushOutcome::default())
    }

    fn reread_refs(&mut self) -> Result<&RefMap, TargetError> {
        self.refs = self.read_refs()?;
        Ok(&self.refs)
    }

    fn source_record(&mut self) -> Result<SourceRecord, TargetError> {
        record::read(&self.path)
    }

    fn write_source_record(&mut self, source_url: &str) -> Result<(), TargetError> {
        // A killed run's `config.lock` would otherwise stand in the way.
        self.prepare_to_write()?;
        record::write(&self.path, source_url)
    }

    fn set_head(&mut self, branch: &str) -> Result<(), TargetError> {
        let current = self
            .repo
            .find_reference("HEAD")
            .ok()
            .and_then(|r| match r.target() {
                gix::refs::TargetRef::Symbolic(name) => Some(name.as_bstr().to_string()),
                gix::refs::TargetRef::Object(_) => None,
            });
        if current.as_deref() == Some(branch) {
            return Ok(());
        }
        self.prepare_to_write()?;
        let target = branch.try_into().map_err(|err| {
            local_error(
                &self.path,
                format!("invalid default branch {branch:?}: {err}"),
            )
        })?;
        let edit = RefEdit {
            change: Change::Update {
                log: LogChange {
                    // `RefLog::Only` would write the reflog and leave HEAD where it was.
                    mode: RefLog::AndReference,
                    force_create_reflog: false,
                    message: "repo-mirror: default branch".into(),
                },
                expected: PreviousValue::Any,
                new: Target::Symbolic(target),
            },
            name: "HEAD"
                .try_into()
                .map_err(|err| local_error(&self.path, format!("{err}")))?,
            deref: false,
        };
        self.repo
            .edit_reference(edit)
            .map_err(|err| local_error(&self.path, format!("could not set HEAD: {err}")))?;
        Ok(())
    }
}
