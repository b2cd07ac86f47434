//! The indexer judged by git: packs made by `git pack-objects` from fixture repositories must get an
//! `.idx` byte-identical to the one `git index-pack` writes, and pass `git verify-pack` and `git fsck`;
//! broken packs must fail with the right error and leave `objects/pack` as it was.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gix::ObjectId;
use tempfile::TempDir;

use super::scan::{self, EntryKind};
use super::*;
use crate::cancel::{Cancellation, Cancelled};

/// Budgets to run every fixture with: the default, nothing in memory, and a few small objects.
const BUDGETS: [u64; 3] = [DEFAULT_MEMORY_BUDGET, 0, 1000];

pub(super) fn git_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Fixture")
        .env("GIT_AUTHOR_EMAIL", "fixture@example.com")
        .env("GIT_COMMITTER_NAME", "Fixture")
        .env("GIT_COMMITTER_EMAIL", "fixture@example.com")
        .env("GIT_AUTHOR_DATE", "1700000000 +0000")
        .env("GIT_COMMITTER_DATE", "1700000000 +0000");
    command
}

/// Runs git in `dir` with `stdin`, asserting success; returns its standard output.
pub(crate) fn git_with_input(dir: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = git_command(dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git runs");
    let mut input = child.stdin.take().expect("stdin is piped");
    input.write_all(stdin).expect("git reads its input");
    drop(input);
    let output = child.wait_with_output().expect("git finishes");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Runs git in `dir`, asserting success; returns its standard output.
pub(crate) fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
    git_with_input(dir, args, b"")
}

/// Deterministic bytes that do not compress (xorshift).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A work repository to make packs from.
pub(super) struct Fixture {
    dir: TempDir,
}

impl Fixture {
    pub(super) fn new() -> Self {
        let dir = TempDir::new().expect("temp dir");
        git(dir.path(), &["init", "-q", "-b", "main", "."]);
        Fixture { dir }
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(super) fn write(&self, name: &str, content: &[u8]) {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("fixture dir");
        }
        fs::write(path, content).expect("fixture file");
    }

    pub(super) fn commit(&self, message: &str) {
        git(self.path(), &["add", "-A"]);
        git(self.path(), &["commit", "-q", "-m", message]);
    }

    /// `git pack-objects` of everything reachable from any ref, with `extra` options.
    pub(super) fn pack(&self, extra: &[&str]) -> Vec<u8> {
        let mut args = vec!["pack-objects", "--revs", "--all", "--stdout", "-q"];
        args.extend_from_slice(extra);
        git(self.path(), &args)
    }

    fn refs(&self) -> Vec<(String, String)> {
        let listing = git(
            self.path(),
            &["for-each-ref", "--format=%(objectname) %(refname)"],
        );
        String::from_utf8(listing)
            .expect("ref listing")
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(id, name)| (id.to_owned(), name.to_owned()))
            .collect()
    }
}

/// A bare repository to index packs into.
struct Target {
    dir: TempDir,
}

impl Target {
    fn new() -> Self {
        let dir = TempDir::new().expect("temp dir");
        git(dir.path(), &["init", "-q", "--bare", "repo.git"]);
        Target { dir }
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo.git")
    }

    fn pack_dir(&self) -> PathBuf {
        self.repo().join("objects/pack")
    }

    fn pack_dir_listing(&self) -> BTreeSet<String> {
        fs::read_dir(self.pack_dir())
            .expect("pack dir")
            .map(|entry| {
                entry
                    .expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }

    /// What `git index-pack` writes for `pack`.
    fn git_index(&self, pack: &[u8]) -> Vec<u8> {
        let reference = self.dir.path().join("reference.pack");
        fs::write(&reference, pack).expect("reference pack");
        git(
            self.dir.path(),
            &["index-pack", "-o", "reference.idx", "reference.pack"],
        );
        fs::read(self.dir.path().join("reference.idx")).expect("reference idx")
    }

    /// Points the fixture's refs at their objects here and runs a full, strict fsck.
    fn fsck_with_refs_of(&self, fixture: &Fixture) {
        for (id, name) in fixture.refs() {
            git(&self.repo(), &["update-ref", &name, &id]);
        }
        git(
            &self.repo(),
            &["fsck", "--full", "--strict", "--no-dangling"],
        );
    }
}

/// Indexes `pack` with each budget into a fresh repository and checks the result against git.
fn assert_indexed_like_git(fixture: &Fixture, pack: &[u8]) {
    for budget in BUDGETS {
        let target = Target::new();
        let before = target.pack_dir_listing();
        let indexed = index_pack_with_budget(&mut &pack[..], &target.pack_dir(), budget)
            .expect("the pack indexes")
            .expect("the pack has objects");

        assert_eq!(
            fs::read(&indexed.pack_path).expect("pack"),
            pack,
            "pack copied as is"
        );
        let index = fs::read(&indexed.index_path).expect("idx");
        assert!(
            index == target.git_index(pack),
            "idx differs from git index-pack's (budget {budget})"
        );
        let mut expected = before;
        expected.insert(file_name(&indexed.pack_path));
        expected.insert(file_name(&indexed.index_path));
        assert_eq!(
            target.pack_dir_listing(),
            expected,
            "no temporary file left"
        );
        let name = format!("pack-{}", indexed.checksum);
        assert_eq!(file_name(&indexed.pack_path), format!("{name}.pack"));
        assert_eq!(file_name(&indexed.index_path), format!("{name}.idx"));

        let index_arg = indexed.index_path.to_string_lossy().into_owned();
        git(&target.repo(), &["verify-pack", &index_arg]);
        target.fsck_with_refs_of(fixture);
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

/// How many entries of `pack` are whole objects, ofs-deltas and ref-deltas.
fn entry_kinds(pack: &[u8]) -> (usize, usize, usize) {
    let dir = TempDir::new().expect("temp dir");
    let copy = dir.path().join("copy.pack");
    let file = fs::File::create(&copy).expect("copy");
    let scanned =
        scan::scan(&mut &pack[..], &file, &copy, &super::Limits::default()).expect("pack scans");
    let count = |wanted: fn(&EntryKind) -> bool| {
        scanned
            .entries
            .iter()
            .filter(|entry| wanted(&entry.kind))
            .count()
    };
    (
        count(|kind| matches!(kind, EntryKind::Whole(_))),
        count(|kind| matches!(kind, EntryKind::OfsDelta { .. })),
        count(|kind| matches!(kind, EntryKind::RefDelta { .. })),
    )
}

/// The longest delta chain `git verify-pack -v` reports for the pack indexed in `target`.
fn longest_chain(target: &Target) -> usize {
    let listing = target.pack_dir_listing();
    let index = listing
        .iter()
        .find(|name| name.ends_with(".idx"))
        .expect("an idx");
    let index_arg = target.pack_dir().join(index).to_string_lossy().into_owned();
    let report = git(&target.repo(), &["verify-pack", "-v", &index_arg]);
    String::from_utf8_lossy(&report)
        .lines()
        .filter_map(|line| line.strip_prefix("chain length = "))
        .filter_map(|rest| rest.split(':').next()?.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

/// A story told over many commits: each version rewrites a different line of one file, so a version
/// is most like its neighbours and deltas chain deeply.
fn story_fixture(versions: usize) -> Fixture {
    let fixture = Fixture::new();
    let mut lines: Vec<String> = (0..300)
        .map(|line| format!("line {line}: the quick brown fox jumps over the lazy dog\n"))
        .collect();
    let count = lines.len();
    for version in 0..versions {
        lines[(version * 37) % count] = format!(
            "line rewritten in version {version}, other words entirely {}\n",
            version * version
        );
        fixture.write("story.txt", lines.concat().as_bytes());
        fixture.write("notes/count.txt", version.to_string().as_bytes());
        fixture.commit(&format!("version {version}"));
    }
    fixture
}

#[test]
fn plain_objects_index_like_git() {
    let fixture = Fixture::new();
    fixture.write("README.md", b"# Fixture\n");
    fixture.write("src/main.rs", b"fn main() {}\n");
    fixture.commit("first");
    fixture.write("src/lib.rs", b"pub fn answer() -> u32 { 42 }\n");
    fixture.write("empty", b"");
    fixture.commit("second");
    let pack = fixture.pack(&["--window=0"]);
    let (whole, ofs, refs) = entry_kinds(&pack);
    assert!(whole >= 8 && ofs == 0 && refs == 0, "{whole} {ofs} {refs}");
    assert_indexed_like_git(&fixture, &pack);
}

#[test]
fn deep_ofs_delta_chains_index_like_git() {
    let fixture = story_fixture(80);
    git(
        fixture.path(),
        &["repack", "-adf", "-q", "--depth=50", "--window=50"],
    );
    let pack = fixture.pack(&["--delta-base-offset"]);
    let (_, ofs, refs) = entry_kinds(&pack);
    assert!(
        ofs >= 70 && refs == 0,
        "{ofs} ofs-deltas, {refs} ref-deltas"
    );
    assert_indexed_like_git(&fixture, &pack);

    let target = Target::new();
    index_pack_defaults(&mut &pack[..], &target.pack_dir()).expect("indexes");
    assert!(longest_chain(&target) >= 40, "chains are deep");
}

#[test]
fn ref_delta_packs_index_like_git() {
    let fixture = story_fixture(40);
    let pack = fixture.pack(&["--window=50", "--depth=50"]);
    let (_, ofs, refs) = entry_kinds(&pack);
    assert!(
        ofs == 0 && refs >= 35,
        "{ofs} ofs-deltas, {refs} ref-deltas"
    );
    assert_indexed_like_git(&fixture, &pack);
}

#[test]
fn a_blob_larger_than_every_buffer_and_a_delta_against_it_index_like_git() {
    let fixture = Fixture::new();
    let mut blob = random_bytes(5 << 20, 7);
    fixture.write("big.bin", &blob);
    fixture.commit("big");
    blob[2 << 20..(2 << 20) + 4096].fill(0);
    blob.extend_from_slice(&random_bytes(200_000, 9));
    fixture.write("big.bin", &blob);
    fixture.commit("big, edited");
    let pack = fixture.pack(&["--delta-base-offset"]);
    assert!(pack.len() > 5 << 20);
    let (_, ofs, _) = entry_kinds(&pack);
    assert_eq!(ofs, 1, "the edited blob is a delta against the first");
    assert_indexed_like_git(&fixture, &pack);
}

#[test]
fn annotated_tags_index_like_git() {
    let fixture = Fixture::new();
    fixture.write("file.txt", b"tagged content\n");
    fixture.commit("first");
    git(fixture.path(), &["tag", "-a", "-m", "release 1", "v1"]);
    git(
        fixture.path(),
        &["tag", "-a", "-m", "a tag of a tag", "v1-again", "v1"],
    );
    git(
        fixture.path(),
        &[
            "tag",
            "-a",
            "-m",
            "a tag of a blob",
            "blob-tag",
            "HEAD:file.txt",
        ],
    );
    fixture.write("file.txt", b"tagged content, changed\n");
    fixture.commit("second");
    git(fixture.path(), &["tag", "-a", "-m", "release 2", "v2"]);
    let pack = fixture.pack(&["--delta-base-offset"]);
    assert_indexed_like_git(&fixture, &pack);
}

#[test]
fn an_empty_pack_stores_nothing() {
    let fixture = Fixture::new();
    let pack = git(fixture.path(), &["pack-objects", "--stdout", "-q"]);
    assert_eq!(pack.len(), 32);
    let target = Target::new();
    let before = target.pack_dir_listing();
    let indexed =
        index_pack_defaults(&mut &pack[..], &target.pack_dir()).expect("an empty pack is fine");
    assert_eq!(indexed, None);
    assert_eq!(target.pack_dir_listing(), before);
}

#[test]
fn a_pack_already_there_is_kept() {
    let fixture = story_fixture(5);
    let pack = fixture.pack(&["--delta-base-offset"]);
    let target = Target::new();
    let first = index_pack_defaults(&mut &pack[..], &target.pack_dir())
        .expect("indexes")
        .expect("has objects");
    let listing = target.pack_dir_listing();
    let second = index_pack_defaults(&mut &pack[..], &target.pack_dir())
        .expect("indexes again")
        .expect("has objects");
    assert_eq!(
        first.new_files,
        [first.index_path.clone(), first.pack_path.clone()]
    );
    assert!(second.new_files.is_empty(), "{second:?}");
    assert_eq!(
        IndexedPack {
            new_files: Vec::new(),
            ..first.clone()
        },
        second
    );
    assert_eq!(target.pack_dir_listing(), listing);
    // Removing what the second call put in place (nothing) keeps the pack that was there.
    second.remove_new_files().expect("nothing to remove");
    assert_eq!(target.pack_dir_listing(), listing);
    first.remove_new_files().expect("removes index and pack");
    assert!(!first.pack_path.exists() && !first.index_path.exists());
}

#[test]
fn reading_stops_right_after_the_trailer() {
    let fixture = story_fixture(3);
    let pack = fixture.pack(&["--delta-base-offset"]);
    let mut stream = pack.clone();
    stream.extend_from_slice(b"what follows the pack");
    let target = Target::new();
    let mut input = &stream[..];
    index_pack_defaults(&mut input, &target.pack_dir()).expect("indexes");
    // The scanner reads ahead in chunks; the copy in objects/pack stops at the trailer regardless.
    let listing = target.pack_dir_listing();
    let pack_name = listing
        .iter()
        .find(|name| name.ends_with(".pack"))
        .expect("pack");
    assert_eq!(
        fs::read(target.pack_dir().join(pack_name)).expect("pack"),
        pack
    );
}

// Broken packs.

/// Indexes `pack` into a fresh repository, expecting failure and an untouched `objects/pack`.
fn index_error(pack: &[u8]) -> IndexPackError {
    for budget in [DEFAULT_MEMORY_BUDGET, 0] {
        let target = Target::new();
        let before = target.pack_dir_listing();
        let result = index_pack_with_budget(&mut &pack[..], &target.pack_dir(), budget);
        assert_eq!(
            target.pack_dir_listing(),
            before,
            "objects/pack is as it was"
        );
        if budget == 0 {
            return result.expect_err("the pack is refused");
        }
        result.expect_err("the pack is refused");
    }
    unreachable!("the loop returns")
}

/// Replaces the trailer with the SHA-1 of the (edited) content.
pub(super) fn fix_trailer(pack: &mut Vec<u8>) {
    pack.truncate(pack.len() - 20);
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    hasher.update(pack);
    let digest = hasher.try_finalize().expect("hash");
    pack.extend_from_slice(digest.as_slice());
}

fn big_blob_pack() -> Vec<u8> {
    let fixture = Fixture::new();
    fixture.write("big.bin", &random_bytes(1 << 20, 3));
    fixture.commit("big");
    fixture.pack(&["--delta-base-offset"])
}

#[test]
fn a_truncated_pack_is_refused() {
    let pack = story_fixture(10).pack(&["--delta-base-offset"]);
    let err = index_error(&pack[..pack.len() / 2]);
    assert!(matches!(err, IndexPackError::Truncated { .. }), "{err}");
    let err = index_error(&pack[..pack.len() - 1]);
    assert!(matches!(err, IndexPackError::Truncated { .. }), "{err}");
}

#[test]
fn a_flipped_byte_is_refused() {
    let mut pack = big_blob_pack();
    let middle = pack.len() / 2;
    pack[middle] ^= 0x40;
    index_error(&pack);
    // Even with a trailer that matches, the blob's zlib checksum does not.
    fix_trailer(&mut pack);
    let err = index_error(&pack);
    assert!(matches!(err, IndexPackError::Zlib { .. }), "{err}");
}

#[test]
fn a_bad_trailer_is_refused() {
    let mut pack = story_fixture(3).pack(&["--delta-base-offset"]);
    let last = pack.len() - 1;
    pack[last] ^= 1;
    let err = index_error(&pack);
    assert!(matches!(err, IndexPackError::Trailer { .. }), "{err}");
}

#[test]
fn a_stream_that_is_no_pack_is_refused() {
    let mut pack = b"PACK\0\0\0\x04\0\0\0\0".to_vec();
    pack.extend_from_slice(&[0; 20]);
    fix_trailer(&mut pack);
    let err = index_error(&pack);
    assert!(matches!(err, IndexPackError::NotAPack { .. }), "{err}");
    let err = index_error(b"<html>not a pack at all</html>");
    assert!(matches!(err, IndexPackError::NotAPack { .. }), "{err}");
}

#[test]
fn a_thin_pack_names_its_missing_base() {
    let fixture = story_fixture(4);
    let pack = git_with_input(
        fixture.path(),
        &[
            "pack-objects",
            "--revs",
            "--thin",
            "--stdout",
            "-q",
            "--delta-base-offset",
        ],
        b"main\n^main~1\n",
    );
    let err = index_error(&pack);
    let IndexPackError::MissingBase { base_id, .. } = err else {
        panic!("not a missing base: {err}");
    };
    let base = base_id.to_string();
    git(fixture.path(), &["cat-file", "-e", &base]);
    assert!(err_text_names(&pack, &base));
}

fn err_text_names(pack: &[u8], id: &str) -> bool {
    index_error(pack).to_string().contains(id)
}

/// Builds packs by hand, for breakage git would never write.
#[derive(Default)]
pub(super) struct PackBuilder {
    pub(super) body: Vec<u8>,
    pub(super) count: u32,
}

impl PackBuilder {
    /// Appends an entry; returns its offset.
    pub(super) fn entry(&mut self, type_id: u8, size: u64, base: &[u8], data: &[u8]) -> u64 {
        let offset = 12 + self.body.len() as u64;
        let mut byte = (type_id << 4) | (size & 0x0f) as u8;
        let mut rest = size >> 4;
        while rest > 0 {
            self.body.push(byte | 0x80);
            byte = (rest & 0x7f) as u8;
            rest >>= 7;
        }
        self.body.push(byte);
        self.body.extend_from_slice(base);
        self.body.extend_from_slice(&deflate(data));
        self.count += 1;
        offset
    }

    fn blob(&mut self, content: &[u8]) -> u64 {
        self.entry(3, content.len() as u64, &[], content)
    }

    fn ofs_delta(&mut self, base_offset: u64, delta: &[u8]) -> u64 {
        let offset = 12 + self.body.len() as u64;
        let distance = encode_distance(offset - base_offset);
        self.entry(6, delta.len() as u64, &distance, delta)
    }

    fn ref_delta(&mut self, base: ObjectId, delta: &[u8]) -> u64 {
        self.entry(7, delta.len() as u64, base.as_slice(), delta)
    }

    pub(super) fn finish(self) -> Vec<u8> {
        let mut pack = b"PACK\0\0\0\x02".to_vec();
        pack.extend_from_slice(&self.count.to_be_bytes());
        pack.extend_from_slice(&self.body);
        pack.extend_from_slice(&[0; 20]);
        fix_trailer(&mut pack);
        pack
    }
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut out = gix::zlib::stream::deflate::Write::new(Vec::new(), Default::default());
    out.write_all(data).expect("deflate");
    out.flush().expect("deflate");
    out.into_inner()
}

pub(super) fn encode_distance(mut distance: u64) -> Vec<u8> {
    let mut bytes = vec![(distance & 0x7f) as u8];
    distance >>= 7;
    while distance > 0 {
        distance -= 1;
        bytes.insert(0, 0x80 | (distance & 0x7f) as u8);
        distance >>= 7;
    }
    bytes
}

/// A delta: base size, result size, then instructions.
fn delta(base_size: u8, result_size: u8, instructions: &[u8]) -> Vec<u8> {
    let mut delta = vec![base_size, result_size];
    delta.extend_from_slice(instructions);
    delta
}

fn blob_id(content: &[u8]) -> ObjectId {
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    hasher.update(&gix::objs::encode::loose_header(
        gix::objs::Kind::Blob,
        content.len() as u64,
    ));
    hasher.update(content);
    hasher.try_finalize().expect("hash")
}

#[test]
fn a_handmade_delta_resolves_like_git_says() {
    let base = b"hello, world";
    let mut builder = PackBuilder::default();
    let base_offset = builder.blob(base);
    // Copy "hello" (offset 0, 5 bytes), insert "!".
    let ofs = builder.ofs_delta(base_offset, &delta(12, 6, b"\x90\x05\x01!"));
    // Against the base by id: copy "world" (offset 7, 5 bytes).
    builder.ref_delta(blob_id(base), &delta(12, 5, b"\x91\x07\x05"));
    let _ = ofs;
    let pack = builder.finish();
    let target = Target::new();
    let indexed = index_pack_defaults(&mut &pack[..], &target.pack_dir())
        .expect("indexes")
        .expect("has objects");
    assert_eq!(
        fs::read(&indexed.index_path).expect("idx"),
        target.git_index(&pack)
    );
    let listing = git(
        &target.repo(),
        &["cat-file", "--batch-all-objects", "--batch-check"],
    );
    let listing = String::from_utf8_lossy(&listing);
    assert!(
        listing.contains(&blob_id(b"hello!").to_string()),
        "{listing}"
    );
    assert!(
        listing.contains(&blob_id(b"world").to_string()),
        "{listing}"
    );
}

/// A pack of one 12-byte blob and an ofs-delta against it.
fn pack_with_delta(delta: &[u8]) -> Vec<u8> {
    let mut builder = PackBuilder::default();
    let base = builder.blob(b"hello, world");
    builder.ofs_delta(base, delta);
    builder.finish()
}

fn delta_problem(pack: &[u8]) -> DeltaProblem {
    match index_error(pack) {
        IndexPackError::Delta { problem, .. } => problem,
        err => panic!("not a delta problem: {err}"),
    }
}

#[test]
fn a_delta_copying_outside_its_base_is_refused() {
    // Copy 10 bytes from offset 8 of a 12-byte base.
    let problem = delta_problem(&pack_with_delta(&delta(12, 10, b"\x91\x08\x0a")));
    assert_eq!(
        problem,
        DeltaProblem::CopyOutOfRange {
            offset: 8,
            size: 10,
            base_len: 12
        }
    );
    // Copy with no size bytes: 64 KiB (an insert after it, as git refuses deltas under 4 bytes).
    let problem = delta_problem(&pack_with_delta(&delta(12, 10, b"\x80\x01!")));
    assert!(matches!(
        problem,
        DeltaProblem::CopyOutOfRange { size: 0x10000, .. }
    ));
}

#[test]
fn deltas_that_break_their_own_promises_are_refused() {
    let cases: [(&[u8], DeltaProblem); 5] = [
        (
            &delta(11, 1, b"\x01!"),
            DeltaProblem::BaseSize {
                expected: 11,
                actual: 12,
            },
        ),
        (&delta(12, 1, b"\x00\x01!"), DeltaProblem::ReservedCommand),
        (
            &delta(12, 1, b"\x02!!"),
            DeltaProblem::TooLong { expected: 1 },
        ),
        (
            &delta(12, 3, b"\x01!"),
            DeltaProblem::TooShort {
                expected: 3,
                actual: 1,
            },
        ),
        (&delta(12, 3, b"\x03!"), DeltaProblem::Truncated),
    ];
    for (delta, expected) in cases {
        assert_eq!(delta_problem(&pack_with_delta(delta)), expected);
    }
    assert_eq!(
        delta_problem(&pack_with_delta(b"\x8c\x80\x80\x80")),
        DeltaProblem::BadHeader
    );
}

#[test]
fn a_delta_promising_an_enormous_result_is_refused_without_reserving_it() {
    // The result would be a base for the next delta, so it would be stored: its size is untrusted.
    let mut enormous = vec![12];
    enormous.extend_from_slice(&[0xff; 9]);
    enormous.push(0x01);
    enormous.extend_from_slice(b"\x01!");
    let mut builder = PackBuilder::default();
    let base = builder.blob(b"hello, world");
    let middle = builder.ofs_delta(base, &enormous);
    builder.ofs_delta(middle, &delta(1, 1, b"\x01!"));
    let err = index_error(&builder.finish());
    assert!(
        matches!(err, IndexPackError::ObjectTooLarge { .. }),
        "{err}"
    );
}

/// A varint as delta headers write sizes.
fn size_varint(mut size: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            bytes.push(byte);
            return bytes;
        }
        bytes.push(byte | 0x80);
    }
}

/// A delta against a 64 KiB base whose result is the base `copies` times: each one-byte instruction
/// `0x80` copies 64 KiB, so a few bytes of pack promise megabytes (a "delta bomb" when large).
fn copying_delta(declared_result: u64, copies: usize) -> Vec<u8> {
    let mut delta = size_varint(0x10000);
    delta.extend(size_varint(declared_result));
    delta.extend(std::iter::repeat_n(0x80u8, copies));
    delta
}

/// Indexes `pack` within `limits`; the error, with objects/pack as it was.
fn error_within(pack: &[u8], limits: &super::Limits) -> IndexPackError {
    error_within_until(pack, limits, &Cancellation::default())
}

/// Indexes `pack` within `limits` until `cancellation` stops it; the error, with objects/pack as it
/// was.
fn error_within_until(
    pack: &[u8],
    limits: &super::Limits,
    cancellation: &Cancellation,
) -> IndexPackError {
    let target = Target::new();
    let before = target.pack_dir_listing();
    let err = super::index_pack_with(&mut &pack[..], &target.pack_dir(), 0, limits, cancellation)
        .expect_err("the pack is refused");
    assert_eq!(
        target.pack_dir_listing(),
        before,
        "objects/pack is as it was"
    );
    err
}

#[test]
fn a_delta_bomb_is_refused_before_anything_is_rebuilt() {
    // A few hundred bytes of pack promising 64 GiB.
    let mut builder = PackBuilder::default();
    let base = builder.blob(&random_bytes(0x10000, 9));
    builder.ofs_delta(base, &copying_delta(64 << 30, 1 << 20));
    let pack = builder.finish();
    assert!(pack.len() < 128 * 1024, "{}", pack.len());
    let err = error_within(&pack, &super::Limits::default());
    assert!(
        matches!(err, IndexPackError::ObjectTooLarge { size, .. } if size == 64 << 30),
        "{err}"
    );
}

#[test]
fn resolving_stops_when_the_repository_is_abandoned_or_its_deadline_passes() {
    // Within every limit, but 3 GiB to rebuild and hash: seconds of work that must not run on.
    let mut builder = PackBuilder::default();
    let base = builder.blob(&random_bytes(0x10000, 11));
    builder.ofs_delta(base, &copying_delta(3 << 30, (3 << 30) / 0x10000));
    let pack = builder.finish();

    let abandoned = Cancellation::default();
    abandoned.cancel();
    let err = error_within_until(&pack, &super::Limits::default(), &abandoned);
    assert!(
        matches!(err, IndexPackError::Cancelled(Cancelled::Abandoned)),
        "{err}"
    );

    // A deadline passing while the one big delta is being rebuilt stops it inside the delta.
    let soon = Cancellation::with_deadline(Some(
        std::time::Instant::now() + std::time::Duration::from_millis(300),
    ));
    let err = error_within_until(&pack, &super::Limits::default(), &soon);
    assert!(
        matches!(err, IndexPackError::Cancelled(Cancelled::DeadlinePassed)),
        "{err}"
    );
}

#[test]
fn what_a_pack_is_rebuilt_into_is_bounded_by_its_size() {
    // Deltas each rebuilding 512 KiB from a 64 KiB base: 2 MiB from a pack of about 70 KiB.
    let mut builder = PackBuilder::default();
    let base = builder.blob(&random_bytes(0x10000, 10));
    for _ in 0..4 {
        builder.ofs_delta(base, &copying_delta(8 * 0x10000, 8));
    }
    let pack = builder.finish();
    let small = super::Limits {
        max_object_bytes: 1 << 20,
        expansion_per_pack_byte: 10,
        expansion_floor_bytes: 256 << 10,
        expansion_ceiling_bytes: 1 << 30,
    };
    let err = error_within(&pack, &small);
    assert!(
        matches!(err, IndexPackError::ExpansionTooLarge { limit, .. } if limit == pack.len() as u64 * 10),
        "{err}"
    );
    // The ceiling wins over the ratio, and the default limits take the same pack.
    let ceiling = super::Limits {
        expansion_per_pack_byte: 1_000_000,
        expansion_ceiling_bytes: 1 << 20,
        expansion_floor_bytes: 0,
        ..small
    };
    assert!(matches!(
        error_within(&pack, &ceiling),
        IndexPackError::ExpansionTooLarge { limit, .. } if limit == 1 << 20
    ));
    let target = Target::new();
    let indexed = super::index_pack_with(
        &mut &pack[..],
        &target.pack_dir(),
        0,
        &super::Limits::default(),
        &Cancellation::default(),
    )
    .expect("indexed within the default limits");
    assert_eq!(indexed.map(|i| i.objects), Some(5));
}

#[test]
fn a_whole_object_declaring_a_huge_size_is_refused_before_it_is_inflated() {
    let mut builder = PackBuilder::default();
    builder.entry(3, 5 << 30, &[], b"tiny");
    let err = error_within(&builder.finish(), &super::Limits::default());
    assert!(
        matches!(err, IndexPackError::ObjectTooLarge { offset: 12, .. }),
        "{err}"
    );
}

#[test]
fn entries_that_lie_about_themselves_are_refused() {
    let mut builder = PackBuilder::default();
    builder.entry(5, 3, &[], b"abc");
    let err = index_error(&builder.finish());
    assert!(
        matches!(err, IndexPackError::UnknownType { type_id: 5, .. }),
        "{err}"
    );

    let mut builder = PackBuilder::default();
    builder.entry(3, 4, &[], b"abc");
    let err = index_error(&builder.finish());
    assert!(
        matches!(
            err,
            IndexPackError::SizeMismatch {
                expected: 4,
                actual: 3,
                ..
            }
        ),
        "{err}"
    );

    let mut builder = PackBuilder::default();
    builder.entry(3, 2, &[], b"abc");
    let err = index_error(&builder.finish());
    assert!(
        matches!(err, IndexPackError::TooLarge { expected: 2, .. }),
        "{err}"
    );

    let mut builder = PackBuilder::default();
    let base = builder.blob(b"hello, world");
    builder.ofs_delta(base + 1, &delta(12, 1, b"\x01!"));
    let err = index_error(&builder.finish());
    assert!(matches!(err, IndexPackError::NoEntryAtBase { .. }), "{err}");

    let mut builder = PackBuilder::default();
    builder.entry(6, 1, &encode_distance(100), b"!");
    let err = index_error(&builder.finish());
    assert!(
        matches!(err, IndexPackError::BaseDistance { distance: 100, .. }),
        "{err}"
    );

    let mut builder = PackBuilder::default();
    builder.entry(3, 0, &[], b"");
    builder.body[0] |= 0x80;
    builder.body.splice(1..1, [0xff; 10]);
    let err = index_error(&builder.finish());
    assert!(matches!(err, IndexPackError::SizeOverflow { .. }), "{err}");
}

#[test]
fn a_ref_delta_against_an_absent_object_names_it() {
    let absent = blob_id(b"not in this pack");
    let mut builder = PackBuilder::default();
    builder.blob(b"hello, world");
    builder.ref_delta(absent, &delta(12, 1, b"\x01!"));
    let err = index_error(&builder.finish());
    assert!(
        matches!(err, IndexPackError::MissingBase { base_id, .. } if base_id == absent),
        "{err}"
    );
    assert!(err.to_string().contains(&absent.to_string()));
}

#[test]
fn mutated_packs_never_panic_and_leave_nothing_behind() {
    let fixture = story_fixture(6);
    let packs = [
        fixture.pack(&["--delta-base-offset"]),
        fixture.pack(&[]),
        pack_with_delta(&delta(12, 6, b"\x90\x05\x01!")),
    ];
    let dir = TempDir::new().expect("temp dir");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for pack in &packs {
        let body = pack.len() - 20;
        // Cut short at many lengths, and with up to three bits flipped under a matching trailer.
        let step = 1 + pack.len() / 200;
        let mut mutants: Vec<Vec<u8>> = (0..pack.len())
            .step_by(step)
            .map(|len| pack[..len].to_vec())
            .collect();
        for _ in 0..150 {
            let mut mutant = pack.clone();
            for _ in 0..1 + next() % 3 {
                let at = 12 + (next() as usize) % (body - 12);
                mutant[at] ^= 1 << (next() % 8);
            }
            fix_trailer(&mut mutant);
            mutants.push(mutant);
        }
        for mutant in mutants {
            for budget in [DEFAULT_MEMORY_BUDGET, 0] {
                let outcome = index_pack_with_budget(&mut &mutant[..], dir.path(), budget);
                let left: Vec<_> = fs::read_dir(dir.path()).expect("dir").collect();
                if outcome.is_err() {
                    assert!(left.is_empty(), "a failure left files behind");
                }
                for file in left {
                    fs::remove_file(file.expect("entry").path()).expect("clean up");
                }
            }
        }
    }
}

/// Whether `git index-pack --stdin` accepts `pack` into a new repository.
fn git_accepts(pack: &[u8]) -> bool {
    let target = Target::new();
    let mut child = git_command(&target.repo(), &["index-pack", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("git runs");
    let mut input = child.stdin.take().expect("stdin is piped");
    let _ = input.write_all(pack);
    drop(input);
    child.wait().expect("git finishes").success()
}

#[test]
fn a_delta_shorter_than_git_accepts_is_refused_like_git_does() {
    // Found by the property test against git: a delta to an empty object is two bytes long here,
    // under git's minimum of four.
    let pack = pack_with_delta(&delta(12, 0, b""));
    assert!(!git_accepts(&pack));
    assert_eq!(delta_problem(&pack), DeltaProblem::TooSmall { size: 2 });

    // Against a base of 16 KiB the base size takes three bytes: four in all, which git accepts.
    let base = random_bytes(1 << 14, 5);
    let mut builder = PackBuilder::default();
    let base_offset = builder.blob(&base);
    builder.ofs_delta(base_offset, &[0x80, 0x80, 0x01, 0x00]);
    let pack = builder.finish();
    assert!(git_accepts(&pack));
    let target = Target::new();
    let indexed = index_pack_defaults(&mut &pack[..], &target.pack_dir())
        .expect("indexes")
        .expect("has objects");
    assert_eq!(
        fs::read(&indexed.index_path).expect("idx"),
        target.git_index(&pack)
    );
}

#[test]
fn a_ref_delta_against_an_object_that_is_in_the_pack_twice_is_refused_like_git_does() {
    // Found by the property test against git: git's index-pack dies with "already resolved
    // (duplicate base)" when a ref-delta's base id names two objects of the pack.
    let base = b"hello, world";
    let mut builder = PackBuilder::default();
    builder.blob(base);
    builder.blob(base);
    builder.ref_delta(blob_id(base), &delta(12, 5, b"\x91\x07\x05"));
    let pack = builder.finish();
    assert!(!git_accepts(&pack));
    let err = index_error(&pack);
    assert!(
        matches!(err, IndexPackError::DuplicateBase { base_id, .. } if base_id == blob_id(base)),
        "{err}"
    );

    // The same with the second copy made by a delta that reproduces its base exactly.
    let mut builder = PackBuilder::default();
    let first = builder.blob(base);
    builder.ofs_delta(first, &delta(12, 12, b"\x90\x0c"));
    builder.ref_delta(blob_id(base), &delta(12, 5, b"\x91\x07\x05"));
    let pack = builder.finish();
    assert!(!git_accepts(&pack));
    let err = index_error(&pack);
    assert!(matches!(err, IndexPackError::DuplicateBase { .. }), "{err}");

    // Duplicates alone, with no ref-delta against them, are accepted by both.
    let mut builder = PackBuilder::default();
    let first = builder.blob(base);
    builder.blob(base);
    builder.ofs_delta(first, &delta(12, 5, b"\x91\x07\x05"));
    let pack = builder.finish();
    assert!(git_accepts(&pack));
    let target = Target::new();
    let indexed = index_pack_defaults(&mut &pack[..], &target.pack_dir())
        .expect("indexes")
        .expect("has objects");
    assert_eq!(
        fs::read(&indexed.index_path).expect("idx"),
        target.git_index(&pack)
    );
}
