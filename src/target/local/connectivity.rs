//! Connectivity before any ref moves, as git's receive-pack checks it (`check_connected`): every
//! object a new tip needs is in the repository, walking only what is new.
//!
//! The refs the mirror already had are taken as connected (this check is what keeps them so). New
//! commits are walked newest first from the new tips, with the commits of the old tips walked along
//! as "known" until no new commit is left in the queue — git's `rev-list --not --all` — so a run
//! that adds one commit to a long history reads one commit, not the history. Each new commit's tree
//! is compared with its parents' trees: an entry with the same name and id as in a parent is present
//! (the parent is known or checked itself), so only what changed is read; blobs are checked for
//! presence only. Tags are followed to what they point at. Every object checked is remembered, so a
//! merge or many tags of one commit cost nothing more.

use crate::cancel::{Cancellation, Cancelled};
use std::collections::{BinaryHeap, HashMap, HashSet};

use gix::bstr::BString;
use gix::objs::Kind;
use gix::ObjectId;

/// A new ref value to check: the ref's name (for the error) and the object it is to point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTip {
    pub name: String,
    pub id: ObjectId,
}

/// Why a new tip is not connected.
#[derive(Debug, thiserror::Error)]
pub enum ConnectivityError {
    #[error("the connectivity check stopped: {0}")]
    Cancelled(#[from] Cancelled),
    #[error("object {object} is missing from the mirror (needed by {reference})")]
    Missing { object: ObjectId, reference: String },
    #[error("object {object} (needed by {reference}) could not be read: {source}")]
    Unreadable {
        object: ObjectId,
        reference: String,
        source: gix::Error,
    },
    #[error("object {object} (needed by {reference}) is not a valid {kind}: {source}")]
    Corrupt {
        object: ObjectId,
        reference: String,
        kind: Kind,
        source: gix::Error,
    },
    #[error("object {object} (needed by {reference}) is a {found}, not a {expected}")]
    WrongKind {
        object: ObjectId,
        reference: String,
        expected: Kind,
        found: Kind,
    },
}

/// How much a check read: for tests and to show that only what is new is walked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Walked {
    /// New commits whose trees were checked.
    pub commits: usize,
    /// Trees read and checked.
    pub trees: usize,
}

/// Checks that every object reachable from `tips` is in `repo`, taking everything reachable from
/// `known` (the values of the refs the repository already had) as present.
pub fn check_connected(
    repo: &gix::Repository,
    tips: &[NewTip],
    known: &HashSet<ObjectId>,
    cancellation: &Cancellation,
) -> Result<Walked, ConnectivityError> {
    let mut walk = Walk {
        repo,
        tips,
        cancellation,
        commits: HashMap::new(),
        queue: BinaryHeap::new(),
        new_in_queue: 0,
        checked: HashSet::new(),
        walked: Walked::default(),
    };
    let mut commit_tips = Vec::new();
    for (index, tip) in tips.iter().enumerate() {
        if known.contains(&tip.id) {
            continue;
        }
        if let Some(commit) = walk.peel_tip(tip.id, index)? {
            commit_tips.push((commit, index));
        }
    }
    if commit_tips.is_empty() {
        return Ok(walk.walked);
    }
    for id in known {
        if let Some(commit) = walk.peel_known(*id) {
            walk.enqueue(commit, None)?;
        }
    }
    for (commit, index) in commit_tips {
        walk.enqueue(commit, Some(index))?;
    }
    walk.run()?;
    Ok(walk.walked)
}

/// A commit met by the walk.
struct CommitState {
    tree: ObjectId,
    parents: Vec<ObjectId>,
    /// Reachable from a known ref: present, not to be checked.
    known: bool,
    /// Still in the queue.
    queued: bool,
    /// The tip it was first reached from (for the error), when new.
    tip: usize,
}

struct Walk<'a> {
    repo: &'a gix::Repository,
    /// Checked before every commit.
    cancellation: &'a Cancellation,
    tips: &'a [NewTip],
    commits: HashMap<ObjectId, CommitState>,
    /// Commits to visit, newest (committer time) first.
    queue: BinaryHeap<(i64, ObjectId)>,
    /// How many queued commits are new: the walk ends when none is left.
    new_in_queue: usize,
    /// Trees, blobs and tags found present and complete.
    checked: HashSet<ObjectId>,
    walked: Walked,
}

/// A tree entry, owned.
struct TreeEntry {
    name: BString,
    id: ObjectId,
    is_tree: bool,
    is_submodule: bool,
}

impl Walk<'_> {
    fn reference(&self, tip: usize) -> String {
        self.tips
            .get(tip)
            .map(|t| t.name.clone())
            .unwrap_or_default()
    }

    /// Reads an object needed by `tip`: missing or unreadable is an error naming both.
    fn read(&self, id: ObjectId, tip: usize) -> Result<(Kind, Vec<u8>), ConnectivityError> {
        match self.repo.try_find_object(id) {
            Ok(Some(object)) => Ok((object.kind, object.detach().data)),
            Ok(None) => Err(ConnectivityError::Missing {
                object: id,
                reference: self.reference(tip),
            }),
            Err(source) => Err(ConnectivityError::Unreadable {
                object: id,
                reference: self.reference(tip),
                source,
            }),
        }
    }

    fn corrupt(
        &self,
        id: ObjectId,
        tip: usize,
        kind: Kind,
        source: gix::Error,
    ) -> ConnectivityError {
        ConnectivityError::Corrupt {
            object: id,
            reference: self.reference(tip),
            kind,
            source,
        }
    }

    fn wrong_kind(
        &self,
        id: ObjectId,
        tip: usize,
        expected: Kind,
        found: Kind,
    ) -> ConnectivityError {
        ConnectivityError::WrongKind {
            object: id,
            reference: self.reference(tip),
            expected,
            found,
        }
    }

    /// Checks a new tip down to its first commit, which it returns (tags are followed; a tree or
    /// blob is checked whole).
    fn peel_tip(
        &mut self,
        mut id: ObjectId,
        tip: usize,
    ) -> Result<Option<ObjectId>, ConnectivityError> {
        loop {
            if self.checked.contains(&id) {
                return Ok(None);
            }
            let (kind, data) = self.read(id, tip)?;
            match kind {
                Kind::Commit => return Ok(Some(id)),
                Kind::Tree => {
                    self.check_tree(id, Vec::new(), tip)?;
                    return Ok(None);
                }
                Kind::Blob => {
                    self.checked.insert(id);
                    return Ok(None);
                }
                Kind::Tag => {
                    let target = gix::objs::TagRef::from_bytes(&data, self.repo.object_hash())
                        .map_err(|err| self.corrupt(id, tip, kind, err))?
                        .target();
                    // Object ids are hashes of their content: a chain of tags cannot loop.
                    self.checked.insert(id);
                    id = target;
                }
            }
        }
    }

    /// The commit a known ref value leads to, if it is one and it is there.
    fn peel_known(&self, mut id: ObjectId) -> Option<ObjectId> {
        loop {
            let object = self.repo.try_find_object(id).ok()??;
            match object.kind {
                Kind::Commit => return Some(id),
                Kind::Tag => {
                    id = gix::objs::TagRef::from_bytes(&object.data, self.repo.object_hash())
                        .ok()?
                        .target();
                }
                Kind::Tree | Kind::Blob => return None,
            }
        }
    }

    /// Queues a commit: known (`tip` None) or new, reached from `tip`. A known commit that is not
    /// there is not this run's concern; a new one that is not there is the error.
    fn enqueue(&mut self, id: ObjectId, tip: Option<usize>) -> Result<(), ConnectivityError> {
        if self.commits.contains_key(&id) {
            if tip.is_none() {
                self.mark_known(id);
            }
            return Ok(());
        }
        let (tree, parents, time) = match tip {
            Some(tip) => {
                let (kind, data) = self.read(id, tip)?;
                if kind != Kind::Commit {
                    return Err(self.wrong_kind(id, tip, Kind::Commit, kind));
                }
                decode_commit(self.repo, &data)
                    .map_err(|err| self.corrupt(id, tip, Kind::Commit, err))?
            }
            None => {
                let Some(object) = self.repo.try_find_object(id).ok().flatten() else {
                    return Ok(());
                };
                if object.kind != Kind::Commit {
                    return Ok(());
                }
                match decode_commit(self.repo, &object.data) {
                    Ok(decoded) => decoded,
                    Err(_) => return Ok(()),
                }
            }
        };
        self.commits.insert(
            id,
            CommitState {
                tree,
                parents,
                known: tip.is_none(),
                queued: true,
                tip: tip.unwrap_or_default(),
            },
        );
        if tip.is_some() {
            self.new_in_queue += 1;
        }
        self.queue.push((time, id));
        Ok(())
    }

    /// Marks a commit met before as known, and, if it was already visited, its ancestors too.
    fn mark_known(&mut self, id: ObjectId) {
        let mut stack = vec![id];
        while let Some(id) = stack.pop() {
            let Some(state) = self.commits.get_mut(&id) else {
                continue;
            };
            if state.known {
                continue;
            }
            state.known = true;
            if state.queued {
                self.new_in_queue -= 1;
            } else {
                stack.extend(state.parents.iter().copied());
            }
        }
    }

    /// Visits commits newest first until no new commit is left in the queue.
    fn run(&mut self) -> Result<(), ConnectivityError> {
        while self.new_in_queue > 0 {
            self.cancellation.check()?;
            let Some((_, id)) = self.queue.pop() else {
                break;
            };
            let Some(state) = self.commits.get_mut(&id) else {
                continue;
            };
            state.queued = false;
            let (known, tip, tree, parents) =
                (state.known, state.tip, state.tree, state.parents.clone());
            if known {
                for parent in parents {
                    self.enqueue(parent, None)?;
                }
                continue;
            }
            self.new_in_queue -= 1;
            for parent in &parents {
                self.enqueue(*parent, Some(tip))?;
            }
            let bases = parents
                .iter()
                .filter_map(|parent| self.commits.get(parent).map(|state| state.tree))
                .collect();
            self.walked.commits += 1;
            self.check_tree(tree, bases, tip)?;
        }
        Ok(())
    }

    /// Checks that `tree` and everything in it are present, reading only what differs from `bases`
    /// (trees that are present and complete, or checked themselves).
    fn check_tree(
        &mut self,
        tree: ObjectId,
        bases: Vec<ObjectId>,
        tip: usize,
    ) -> Result<(), ConnectivityError> {
        let mut stack = vec![(tree, bases)];
        while let Some((tree, bases)) = stack.pop() {
            if self.checked.contains(&tree) || bases.contains(&tree) {
                continue;
            }
            let entries = self.tree_entries(tree, tip)?;
            self.walked.trees += 1;
            let base_entries: Vec<HashMap<BString, TreeEntry>> = bases
                .iter()
                .filter_map(|base| self.tree_entries(*base, tip).ok())
                .map(|entries| entries.into_iter().map(|e| (e.name.clone(), e)).collect())
                .collect();
            for entry in entries {
                if entry.is_submodule || self.checked.contains(&entry.id) {
                    continue;
                }
                let same_in_base = base_entries
                    .iter()
                    .filter_map(|base| base.get(&entry.name))
                    .any(|base| base.id == entry.id);
                if same_in_base {
                    continue;
                }
                if entry.is_tree {
                    let sub_bases = base_entries
                        .iter()
                        .filter_map(|base| base.get(&entry.name))
                        .filter(|base| base.is_tree)
                        .map(|base| base.id)
                        .collect();
                    stack.push((entry.id, sub_bases));
                } else if self.repo.has_object(entry.id) {
                    self.checked.insert(entry.id);
                } else {
                    return Err(ConnectivityError::Missing {
                        object: entry.id,
                        reference: self.reference(tip),
                    });
                }
            }
            self.checked.insert(tree);
        }
        Ok(())
    }

    fn tree_entries(
        &self,
        tree: ObjectId,
        tip: usize,
    ) -> Result<Vec<TreeEntry>, ConnectivityError> {
        let (kind, data) = self.read(tree, tip)?;
        if kind != Kind::Tree {
            return Err(self.wrong_kind(tree, tip, Kind::Tree, kind));
        }
        let decoded = gix::objs::TreeRef::from_bytes(&data, self.repo.object_hash())
            .map_err(|err| self.corrupt(tree, tip, Kind::Tree, err))?;
        Ok(decoded
            .entries
            .iter()
            .map(|entry| TreeEntry {
                name: entry.filename.to_owned(),
                id: entry.oid.to_owned(),
                is_tree: entry.mode.is_tree(),
                is_submodule: entry.mode.is_commit(),
            })
            .collect())
    }
}

/// A commit's tree, parents and committer time (0 when it cannot be read: only the order of the
/// walk depends on it).
fn decode_commit(
    repo: &gix::Repository,
    data: &[u8],
) -> Result<(ObjectId, Vec<ObjectId>, i64), gix::Error> {
    let commit = gix::objs::CommitRef::from_bytes(data, repo.object_hash())?;
    let time = commit.time().map(|t| t.seconds).unwrap_or_default();
    Ok((commit.tree(), commit.parents().collect(), time))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::git::index_pack::tests::{git, git_with_input};

    fn rev(repo: &Path, spec: &str) -> ObjectId {
        let out = git(repo, &["rev-parse", "--verify", spec]);
        let hex = String::from_utf8_lossy(&out).trim().to_owned();
        ObjectId::from_hex(hex.as_bytes()).expect("rev-parse prints an object id")
    }

    fn tip(name: &str, id: ObjectId) -> NewTip {
        NewTip {
            name: name.into(),
            id,
        }
    }

    fn open(repo: &Path) -> gix::Repository {
        gix::open(repo).expect("a repository")
    }

    /// Deletes the loose object file of `id`.
    fn remove_loose(repo: &Path, id: ObjectId) {
        let hex = id.to_string();
        let path = repo.join(".git/objects").join(&hex[..2]).join(&hex[2..]);
        std::fs::remove_file(&path).expect("the object is a loose file");
    }

    /// A work tree with loose objects: `a.txt` and `dir/b.txt` committed, then `dir/b.txt` changed.
    fn two_commits() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path();
        git(repo, &["init", "-q", "-b", "main", "."]);
        std::fs::create_dir_all(repo.join("dir")).expect("dir");
        std::fs::write(repo.join("a.txt"), "a").expect("write");
        std::fs::write(repo.join("dir/b.txt"), "b1").expect("write");
        git(repo, &["add", "-A"]);
        git(repo, &["commit", "-q", "-m", "one"]);
        std::fs::write(repo.join("dir/b.txt"), "b2").expect("write");
        git(repo, &["commit", "-q", "-a", "-m", "two"]);
        dir
    }

    #[test]
    fn a_complete_history_is_connected() {
        let dir = two_commits();
        let main = rev(dir.path(), "main");
        let walked = check_connected(
            &open(dir.path()),
            &[tip("refs/heads/main", main)],
            &HashSet::new(),
            &Cancellation::default(),
        )
        .expect("connected");
        assert_eq!(walked.commits, 2);
    }

    #[test]
    fn a_missing_blob_of_a_new_commit_is_named_with_its_ref() {
        let dir = two_commits();
        let main = rev(dir.path(), "main");
        let blob = rev(dir.path(), "main:dir/b.txt");
        remove_loose(dir.path(), blob);
        let err = check_connected(
            &open(dir.path()),
            &[tip("refs/heads/main", main)],
            &HashSet::new(),
            &Cancellation::default(),
        )
        .expect_err("a blob is missing");
        match &err {
            ConnectivityError::Missing { object, reference } => {
                assert_eq!(*object, blob);
                assert_eq!(reference, "refs/heads/main");
            }
            other => panic!("not a missing object: {other}"),
        }
        assert!(err.to_string().contains(&blob.to_string()), "{err}");
    }

    #[test]
    fn a_missing_parent_or_tagged_tree_is_found() {
        let dir = two_commits();
        let main = rev(dir.path(), "main");
        let first = rev(dir.path(), "main~1");
        git(
            dir.path(),
            &["tag", "-a", "-m", "tree", "tree-tag", "main~1^{tree}"],
        );
        let tree_tag = rev(dir.path(), "refs/tags/tree-tag");
        let unchanged_blob = rev(dir.path(), "main~1:a.txt");
        remove_loose(dir.path(), unchanged_blob);
        // From the second commit the blob is known through its parent, which is known itself.
        check_connected(
            &open(dir.path()),
            &[tip("refs/heads/main", main)],
            &HashSet::from([first]),
            &Cancellation::default(),
        )
        .expect("only what is new is checked");
        let err = check_connected(
            &open(dir.path()),
            &[tip("refs/tags/tree-tag", tree_tag)],
            &HashSet::new(),
            &Cancellation::default(),
        )
        .expect_err("the tagged tree lacks a blob");
        assert!(
            matches!(&err, ConnectivityError::Missing { object, reference }
                if *object == unchanged_blob && reference == "refs/tags/tree-tag"),
            "{err}"
        );
        remove_loose(dir.path(), first);
        let err = check_connected(
            &open(dir.path()),
            &[tip("refs/heads/main", main)],
            &HashSet::new(),
            &Cancellation::default(),
        )
        .expect_err("the parent commit is missing");
        assert!(
            matches!(&err, ConnectivityError::Missing { object, .. } if *object == first),
            "{err}"
        );
    }

    /// A history of `count` commits on main, one a minute, each changing one of five files.
    fn long_history(count: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        git(dir.path(), &["init", "-q", "--bare", "."]);
        let mut stream = String::new();
        for n in 1..=count {
            let message = format!("commit {n}");
            let content = format!("content {n}");
            stream.push_str(&format!(
                "commit refs/heads/main\nmark :{n}\ncommitter C <c@example.com> {} +0000\ndata {}\n{message}\n",
                1_700_000_000 + 60 * n,
                message.len()
            ));
            if n > 1 {
                stream.push_str(&format!("from :{}\n", n - 1));
            }
            stream.push_str(&format!(
                "M 644 inline dir/file{}.txt\ndata {}\n{content}\n\n",
                n % 5,
                content.len()
            ));
        }
        git_with_input(dir.path(), &["fast-import", "--quiet"], stream.as_bytes());
        dir
    }

    #[test]
    fn only_what_is_new_is_walked() {
        let dir = long_history(40);
        let repo = open(dir.path());
        let old_main = rev(dir.path(), "main~1");
        let known = HashSet::from([old_main]);
        let walked = check_connected(
            &repo,
            &[
                tip("refs/heads/main", rev(dir.path(), "main")),
                tip("refs/heads/old-point", rev(dir.path(), "main~30")),
            ],
            &known,
            &Cancellation::default(),
        )
        .expect("connected");
        assert_eq!(
            walked,
            Walked {
                commits: 1,
                trees: 2
            },
            "one new commit, its root tree and the one directory it changed"
        );
        let nothing_new = check_connected(
            &repo,
            &[tip("refs/heads/main", old_main)],
            &known,
            &Cancellation::default(),
        )
        .expect("connected");
        assert_eq!(nothing_new, Walked::default());
    }
}
