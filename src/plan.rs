//! The plan: a pure function from the refs of both sides and the mirroring policy to the ref changes to
//! report and the pushes that apply them. No I/O happens here, which is what lets the tricky cases
//! (force pushes, protected refs, prune, diverged policies, batching, refused names, empty sources) be
//! tested exhaustively.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use crate::refs::{self, ObjectId, RefGlob, RefMap, BACKUP_NAMESPACE, HEADS, TAGS};

/// What to do with a target ref that is not an ancestor of the source's new value (`MIRROR_DIVERGED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DivergedPolicy {
    /// Force the target ref to the source's value.
    Overwrite,
    /// Leave the target ref alone and report it.
    Keep,
    /// Keep the old value under `refs/mirror-backup/`, then force the target ref.
    Backup,
}

/// Everything the plan needs to know besides the refs.
#[derive(Debug, Clone)]
pub struct Policy {
    pub prune: bool,
    pub protected: Vec<RefGlob>,
    pub diverged: DivergedPolicy,
    /// Ref updates per push at most; larger changes are split into several pushes.
    pub max_refs_per_push: usize,
    /// The target refuses branch names of exactly 40 hex characters (CodeCommit).
    pub refuses_40_hex_branch_names: bool,
    /// Names this run's backups: `refs/mirror-backup/<stamp>/heads/<branch>`.
    pub backup_stamp: String,
}

/// How one ref changes, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Create,
    /// A fast-forward.
    Update,
    /// Not a fast-forward (or a moved tag, or ancestry that could not be decided).
    Force,
    Delete,
    /// Left alone on purpose: diverged under `keep`, protected, or not pruned; `reason` says why.
    Keep,
    /// Cannot be mirrored to this target; `reason` says why.
    Skip,
}

impl ChangeKind {
    /// Whether the change moves a target ref (as opposed to reporting why one is left alone).
    pub fn applies(self) -> bool {
        matches!(
            self,
            ChangeKind::Create | ChangeKind::Update | ChangeKind::Force | ChangeKind::Delete
        )
    }
}

/// One reported ref change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefChange {
    pub name: String,
    pub kind: ChangeKind,
    pub old: Option<ObjectId>,
    pub new: Option<ObjectId>,
    pub reason: Option<String>,
}

/// One ref update sent to the target, as in a receive-pack command (`old` null for a create, `new` null for a delete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    pub old: ObjectId,
    pub new: ObjectId,
}

impl Command {
    pub fn is_delete(&self) -> bool {
        self.new.is_null()
    }
}

/// One push: its commands, and the fetch that produces its pack (`wants` minus everything reachable from `haves`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub commands: Vec<Command>,
    /// Objects the target lacks that this push needs; empty when it needs none.
    pub wants: Vec<ObjectId>,
    /// Tips the target has once the earlier batches landed.
    pub haves: Vec<ObjectId>,
}

impl Batch {
    /// A push that only deletes sends no pack at all.
    pub fn sends_pack(&self) -> bool {
        self.commands.iter().any(|c| !c.is_delete())
    }
}

/// A backup this run makes (`MIRROR_DIVERGED=backup`) before it forces `of`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// The backup ref, `refs/mirror-backup/<stamp>/…`.
    pub name: String,
    /// The ref whose old value it keeps.
    pub of: String,
    /// That old value.
    pub value: ObjectId,
}

/// The outcome of planning one repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Every reported change, ordered by ref name.
    pub changes: Vec<RefChange>,
    /// The pushes that create this run's backups. They go first, and a forced update whose backup the
    /// target has not confirmed never goes at all: see [`Plan::withhold_unbacked`].
    pub backup_batches: Vec<Batch>,
    /// Every backup in `backup_batches`, with the ref it keeps.
    pub backups: Vec<Backup>,
    /// The pushes that apply the changes, in order, once the backups are confirmed.
    pub batches: Vec<Batch>,
}

impl Plan {
    /// No ref would move.
    pub fn is_up_to_date(&self) -> bool {
        self.backup_batches.is_empty() && self.batches.is_empty()
    }

    /// Every push, backups first.
    pub fn all_batches(&self) -> impl Iterator<Item = &Batch> {
        self.backup_batches.iter().chain(&self.batches)
    }

    /// Once the backup pushes are done: every forced update whose backup `target` (the target's refs as
    /// read after those pushes) does not hold is withheld — reported `keep` with the target's reason from
    /// `refused` (backup ref → reason) — and the remaining commands are formed into batches again
    /// against `target`. No old value is overwritten unless its backup is known to exist.
    pub fn withhold_unbacked(
        &mut self,
        target: &RefMap,
        refused: &[(String, String)],
        max_refs_per_push: usize,
    ) {
        let mut withheld = HashMap::new();
        for backup in &self.backups {
            if target.get(&backup.name).map(|v| v.oid) == Some(backup.value) {
                continue;
            }
            let why = refused
                .iter()
                .find(|(name, _)| *name == backup.name)
                .map(|(_, why)| format!("the target refused it: {why}"))
                .unwrap_or_else(|| "the target does not show it after the push".into());
            withheld.insert(
                backup.of.clone(),
                format!(
                    "diverged, and its backup {} could not be made ({why}): not overwritten",
                    backup.name
                ),
            );
        }
        if withheld.is_empty() {
            return;
        }
        for change in &mut self.changes {
            if let Some(why) = withheld.get(&change.name) {
                change.kind = ChangeKind::Keep;
                change.reason = Some(why.clone());
            }
        }
        let remaining: Vec<Command> = self
            .batches
            .iter()
            .flat_map(|b| &b.commands)
            .filter(|c| !withheld.contains_key(&c.name))
            .cloned()
            .collect();
        self.batches = into_batches(remaining, target, max_refs_per_push.max(1));
    }

    /// The final value of every mirrored target ref once all batches landed, to check the target against.
    pub fn expected_target(&self, target: &RefMap) -> HashMap<String, Option<ObjectId>> {
        let mut expected: HashMap<String, Option<ObjectId>> = target
            .iter()
            .map(|(name, value)| (name.clone(), Some(value.oid)))
            .collect();
        for command in self.all_batches().flat_map(|b| &b.commands) {
            expected.insert(
                command.name.clone(),
                (!command.new.is_null()).then_some(command.new),
            );
        }
        expected
    }
}

/// Known answers to "is `old` an ancestor of `new`?" for branch updates; a missing pair means unknown.
pub type Ancestry = HashMap<(ObjectId, ObjectId), bool>;

/// The (old, new) pairs whose ancestry decides between a fast-forward and a forced update.
pub fn ancestry_questions(source: &RefMap, target: &RefMap) -> Vec<(ObjectId, ObjectId)> {
    let mut pairs = BTreeSet::new();
    for (name, new) in source.iter().filter(|(name, _)| name.starts_with(HEADS)) {
        if let Some(old) = target.get(name) {
            if old.oid != new.oid {
                pairs.insert((old.oid, new.oid));
            }
        }
    }
    pairs.into_iter().collect()
}

/// Plans one repository: which target refs change, how, and in which pushes.
pub fn plan(source: &RefMap, target: &RefMap, ancestry: &Ancestry, policy: &Policy) -> Plan {
    let protected_by = |name: &str| policy.protected.iter().find(|glob| glob.matches(name));
    let stamp = match policy.diverged {
        DivergedPolicy::Backup => free_backup_stamp(&policy.backup_stamp, target),
        _ => policy.backup_stamp.clone(),
    };
    let mut changes = Vec::new();
    let mut backups = Vec::new();
    let mut commands = Vec::new();

    let target_mirrored = target.iter().filter(|(name, _)| refs::is_mirrored(name));
    if source.is_empty() {
        for (name, old) in target_mirrored {
            changes.push(RefChange {
                name: name.clone(),
                kind: ChangeKind::Keep,
                old: Some(old.oid),
                new: None,
                reason: Some("the source advertises no branches or tags: nothing is pruned".into()),
            });
        }
        return Plan {
            changes,
            ..Plan::default()
        };
    }

    for (name, new) in source.iter().filter(|(name, _)| refs::is_mirrored(name)) {
        let old = target.get(name).map(|v| v.oid);
        if old == Some(new.oid) {
            continue;
        }
        let change = |kind, reason: Option<String>| RefChange {
            name: name.clone(),
            kind,
            old,
            new: Some(new.oid),
            reason,
        };
        if let Some(glob) = protected_by(name) {
            changes.push(change(
                ChangeKind::Keep,
                Some(format!(
                    "protected by MIRROR_PROTECTED_REFS ({})",
                    glob.as_str()
                )),
            ));
            continue;
        }
        if policy.refuses_40_hex_branch_names && refs::is_40_hex_branch(name) {
            changes.push(change(
                ChangeKind::Skip,
                Some("the target refuses branch names of exactly 40 hex characters".into()),
            ));
            continue;
        }
        let Some(old) = old else {
            changes.push(change(ChangeKind::Create, None));
            commands.push(Command {
                name: name.clone(),
                old: null(),
                new: new.oid,
            });
            continue;
        };
        let diverged_because = if name.starts_with(TAGS) {
            Some("the tag was moved at the source")
        } else {
            match ancestry.get(&(old, new.oid)) {
                Some(true) => None,
                Some(false) => Some("the target branch is not an ancestor of the source's"),
                None => Some(
                    "whether the target branch is an ancestor of the source's could not be decided",
                ),
            }
        };
        match (diverged_because, policy.diverged) {
            (None, _) => {
                changes.push(change(ChangeKind::Update, None));
            }
            (Some(_), DivergedPolicy::Overwrite) => {
                changes.push(change(ChangeKind::Force, None));
            }
            (Some(why), DivergedPolicy::Keep) => {
                changes.push(change(
                    ChangeKind::Keep,
                    Some(format!("diverged: {why}; kept (MIRROR_DIVERGED=keep)")),
                ));
                continue;
            }
            (Some(why), DivergedPolicy::Backup) => {
                let backup = backup_name(&stamp, name);
                changes.push(change(
                    ChangeKind::Force,
                    Some(format!(
                        "diverged: {why}; the old value is kept at {backup}"
                    )),
                ));
                backups.push(Backup {
                    name: backup,
                    of: name.clone(),
                    value: old,
                });
            }
        }
        commands.push(Command {
            name: name.clone(),
            old,
            new: new.oid,
        });
    }

    for (name, old) in target_mirrored.filter(|(name, _)| !source.contains_key(*name)) {
        if let Some(glob) = protected_by(name) {
            changes.push(RefChange {
                name: name.clone(),
                kind: ChangeKind::Keep,
                old: Some(old.oid),
                new: None,
                reason: Some(format!(
                    "protected by MIRROR_PROTECTED_REFS ({})",
                    glob.as_str()
                )),
            });
        } else if policy.prune {
            changes.push(RefChange {
                name: name.clone(),
                kind: ChangeKind::Delete,
                old: Some(old.oid),
                new: None,
                reason: None,
            });
            commands.push(Command {
                name: name.clone(),
                old: old.oid,
                new: null(),
            });
        }
    }

    changes.sort_by(|a, b| a.name.cmp(&b.name));
    // Deletions first (frees names for creations like `a` → `a/b`), then branches, then tags.
    commands.sort_by_key(|c| {
        (
            c.is_delete() as u8 ^ 1,
            !c.name.starts_with(HEADS),
            c.name.clone(),
        )
    });
    let max_per_push = policy.max_refs_per_push.max(1);
    // Backups travel in pushes of their own, before anything else: they name objects the target has,
    // so they need no pack, and they must be confirmed before the refs they keep are forced.
    let backup_commands: Vec<Command> = backups
        .iter()
        .map(|b| Command {
            name: b.name.clone(),
            old: null(),
            new: b.value,
        })
        .collect();
    Plan {
        changes,
        backup_batches: into_batches(backup_commands, target, max_per_push),
        backups,
        batches: into_batches(commands, target, max_per_push),
    }
}

fn null() -> ObjectId {
    ObjectId::null(gix::hash::Kind::Sha1)
}

/// This run's backup stamp, made unique within the target: when the target already holds backups
/// under it (another run in the same second), `STAMP-2`, `STAMP-3`, … — a backup is always a new
/// ref, never one that could collide with an earlier run's.
fn free_backup_stamp(stamp: &str, target: &RefMap) -> String {
    let taken = |candidate: &str| {
        let prefix = format!("{BACKUP_NAMESPACE}{candidate}/");
        target
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(name, _)| name.starts_with(&prefix))
            || target.contains_key(&format!("{BACKUP_NAMESPACE}{candidate}"))
    };
    if !taken(stamp) {
        return stamp.to_owned();
    }
    (2..)
        .map(|n| format!("{stamp}-{n}"))
        .find(|candidate| !taken(candidate))
        .unwrap_or_else(|| stamp.to_owned())
}

fn backup_name(stamp: &str, name: &str) -> String {
    format!(
        "{BACKUP_NAMESPACE}{stamp}/{}",
        name.strip_prefix("refs/").unwrap_or(name)
    )
}

fn into_batches(commands: Vec<Command>, target: &RefMap, max_per_push: usize) -> Vec<Batch> {
    let mut present: BTreeSet<ObjectId> = target.values().map(|v| v.oid).collect();
    let mut batches = Vec::new();
    for chunk in commands.chunks(max_per_push) {
        let haves: Vec<ObjectId> = present.iter().copied().collect();
        let mut wants = BTreeSet::new();
        for command in chunk.iter().filter(|c| !c.is_delete()) {
            if !present.contains(&command.new) {
                wants.insert(command.new);
            }
        }
        present.extend(chunk.iter().filter(|c| !c.is_delete()).map(|c| c.new));
        batches.push(Batch {
            commands: chunk.to_vec(),
            wants: wants.into_iter().collect(),
            haves,
        });
    }
    batches
}

#[cfg(test)]
mod tests;
