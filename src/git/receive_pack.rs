//! The target side: refs (under valid names only) and capabilities from the receive-pack
//! advertisement, and a push — command pkt-lines, a flush, then the pack streamed through — whose
//! report-status is parsed so that every refused ref surfaces with the server's reason. Both answers
//! are read up to the limits in [`answer_limits`](super::answer_limits).

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use gix::protocol::handshake::Ref;
use gix::protocol::transport::client::blocking_io::Transport;
use gix::protocol::transport::client::{MessageKind, WriteMode};
use gix::protocol::transport::{Protocol, Service};

use super::answer_limits::{
    read_to_end_limited, AdvertisementLimits, Answer, AnswerLimit, LimitedAdvertisement,
    ReportStatusLimits, MAX_SIDE_BAND_MESSAGE_BYTES,
};
use super::connection::HttpTransport;
use super::error::describe;
use super::{pktline, Endpoint, GitError};
use crate::plan::Command;
use crate::refs::{checked_name, RefMap, RefValue};

/// A protocol v1 connection to a target repository's receive-pack.
pub struct TargetConnection {
    url: String,
    transport: HttpTransport,
    capabilities: Vec<String>,
    refs: RefMap,
}

/// What a push achieved.
#[derive(Debug, Default)]
pub struct PushOutcome {
    /// Refs the target refused, with its reason.
    pub rejected: Vec<(String, String)>,
    /// Pack bytes sent.
    pub pack_bytes: u64,
}

impl TargetConnection {
    pub fn open(endpoint: &Endpoint) -> Result<Self, GitError> {
        Self::open_with_limits(endpoint, AdvertisementLimits::default())
    }

    /// [`TargetConnection::open`], reading the ref advertisement up to `limits`.
    pub fn open_with_limits(
        endpoint: &Endpoint,
        limits: AdvertisementLimits,
    ) -> Result<Self, GitError> {
        let url = endpoint.url.clone();
        let handshake_error = |message: String| GitError::Handshake {
            url: url.clone(),
            message,
            status: None,
        };
        let mut transport = endpoint.connect(Protocol::V1)?;
        let mut response = transport
            .handshake(Service::ReceivePack, &[])
            .map_err(|err| GitError::handshake(&url, &err))?;
        let capabilities: Vec<String> = response
            .capabilities
            .iter()
            .map(|c| match c.value() {
                Some(value) => format!("{}={}", c.name(), value),
                None => c.name().to_string(),
            })
            .collect();
        let mut refs = RefMap::new();
        if let Some(reader) = response.refs.as_mut() {
            let mut limited = LimitedAdvertisement::new(reader.as_mut(), limits);
            let listed = gix::protocol::handshake::refs::from_v1_refs_received_as_part_of_handshake_and_capabilities(
                &mut limited,
                response.capabilities.iter(),
            );
            if let Some(limit) = limited.exceeded() {
                return Err(GitError::AnswerTooLarge {
                    url,
                    answer: Answer::RefAdvertisement,
                    limit,
                });
            }
            let (advertised, _) = listed.map_err(|err| {
                handshake_error(format!("could not read the advertised refs: {err}"))
            })?;
            for r in advertised {
                let (name, value) = match r {
                    Ref::Direct {
                        full_ref_name,
                        object,
                    } => (full_ref_name, RefValue::direct(object)),
                    Ref::Peeled {
                        full_ref_name,
                        tag,
                        object,
                    } => (
                        full_ref_name,
                        RefValue {
                            oid: tag,
                            peeled: Some(object),
                        },
                    ),
                    Ref::Symbolic { .. } | Ref::Unborn { .. } => continue,
                };
                // A name that is not a valid ref name or not UTF-8 is left out, so it is never
                // deleted, updated or compared: the mirror only ever names refs it can name exactly.
                if value.oid.is_null() || !name.starts_with(b"refs/") {
                    continue;
                }
                if let Ok(name) = checked_name(&name) {
                    refs.insert(name, value);
                }
            }
        }
        drop(response);
        Ok(TargetConnection {
            url,
            transport,
            capabilities,
            refs,
        })
    }

    /// Every ref the target advertised (all namespaces), annotated tags peeled.
    pub fn refs(&self) -> &RefMap {
        &self.refs
    }

    pub fn supports(&self, capability: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| c == capability || c.starts_with(&format!("{capability}=")))
    }

    /// Sends `commands` with `pack` (None for a delete-only push) and reads the target's verdict.
    pub fn push(
        mut self,
        commands: &[Command],
        pack: Option<&mut dyn Read>,
    ) -> Result<PushOutcome, GitError> {
        let url = self.url.clone();
        let push_error = |message: String| GitError::Push {
            url: url.clone(),
            message,
        };
        let wanted = ["report-status", "side-band-64k", "atomic"];
        let mut sent: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|c| self.supports(c))
            .collect();
        if commands.iter().any(Command::is_delete) && !self.supports("delete-refs") {
            return Err(push_error(
                "the target does not accept ref deletions (no delete-refs capability)".into(),
            ));
        }
        let agent = concat!("agent=repo-mirror/", env!("CARGO_PKG_VERSION"));
        sent.push(agent);
        let side_band = self.supports("side-band-64k");
        let report_status = self.supports("report-status");

        let mut body = Vec::with_capacity(commands.len() * 100);
        for (i, command) in commands.iter().enumerate() {
            let mut line = format!("{} {} {}", command.old, command.new, command.name).into_bytes();
            if i == 0 {
                line.push(0);
                line.extend_from_slice(sent.join(" ").as_bytes());
            }
            body.extend(pktline::encode(&line));
        }
        body.extend_from_slice(pktline::FLUSH);

        let request = self
            .transport
            .request(WriteMode::Binary, MessageKind::Flush, false)
            .map_err(|err| push_error(describe(&err)))?;
        let (mut writer, mut reader) = request.into_parts();
        let mut pack_bytes = 0;
        let written = writer.write_all(&body).and_then(|()| match pack {
            Some(pack) => io::copy(pack, &mut writer).map(|n| pack_bytes = n),
            None => Ok(()),
        });
        if let Err(err) = written {
            // The target may already have answered (e.g. refused the request); show its words if it did.
            drop(writer);
            let mut answer = Vec::new();
            let _ = (&mut reader)
                .take(REFUSAL_EXCERPT_BYTES)
                .read_to_end(&mut answer);
            let answer = String::from_utf8_lossy(&answer);
            let detail = if answer.trim().is_empty() {
                String::new()
            } else {
                format!(" (target said: {})", answer.trim())
            };
            return Err(GitError::PackStream {
                url: self.url.clone(),
                bytes: pack_bytes,
                message: format!("{err}{detail}"),
            });
        }
        writer.flush().map_err(|err| push_error(describe(&err)))?;
        drop(writer);

        let remote_messages = Arc::new(Mutex::new(RemoteMessages::default()));
        if side_band {
            let sink = remote_messages.clone();
            reader.set_progress_handler(Some(Box::new(move |is_error, text| {
                let Ok(mut messages) = sink.lock() else {
                    return std::ops::ControlFlow::Continue(());
                };
                messages.note(is_error, text)
            })));
        }
        let read = read_report_status(&mut reader, side_band, report_status, commands);
        let (messages, too_many_messages) = remote_messages
            .lock()
            .map(|m| (m.errors.join("; "), m.over_limit))
            .unwrap_or_default();
        if too_many_messages {
            return Err(GitError::AnswerTooLarge {
                url: self.url.clone(),
                answer: Answer::SideBandMessages,
                limit: AnswerLimit::Bytes(MAX_SIDE_BAND_MESSAGE_BYTES),
            });
        }
        let with_messages = |message: String| {
            if messages.is_empty() {
                message
            } else {
                format!("{message} (target said: {messages})")
            }
        };
        let outcome = match read {
            Ok(outcome) => outcome,
            Err(ReportStatusFailure::Read(err)) => {
                return Err(push_error(with_messages(err.to_string())))
            }
            Err(ReportStatusFailure::TooLarge(limit)) => {
                return Err(GitError::AnswerTooLarge {
                    url: self.url.clone(),
                    answer: Answer::ReportStatus,
                    limit,
                })
            }
            Err(ReportStatusFailure::Malformed(message)) => {
                return Err(GitError::ReportStatus {
                    url: self.url.clone(),
                    message: with_messages(message),
                })
            }
        };
        match outcome {
            Ok(rejected) => Ok(PushOutcome {
                rejected,
                pack_bytes,
            }),
            Err(unpack) => Err(GitError::Unpack {
                url: self.url.clone(),
                message: unpack,
            }),
        }
    }
}

/// Bytes of a target's answer shown when it refused a push before taking all of it.
const REFUSAL_EXCERPT_BYTES: u64 = 4096;
/// Error messages from the side-band kept to show with a failure; later ones are counted, not kept.
const KEPT_ERROR_MESSAGES: usize = 16;
/// Characters of a malformed report-status shown in the error.
const MALFORMED_EXCERPT_CHARS: usize = 200;
/// Characters kept of each side-band error message.
const KEPT_MESSAGE_CHARS: usize = 500;

/// The side-band messages of a push: the errors among them, and whether they went over their limit.
#[derive(Default)]
struct RemoteMessages {
    errors: Vec<String>,
    bytes: u64,
    over_limit: bool,
}

impl RemoteMessages {
    /// Takes one message; stops the transfer once the messages go over their limit.
    fn note(&mut self, is_error: bool, text: &[u8]) -> std::ops::ControlFlow<()> {
        self.bytes = self.bytes.saturating_add(text.len() as u64);
        if self.bytes > MAX_SIDE_BAND_MESSAGE_BYTES {
            self.over_limit = true;
            return std::ops::ControlFlow::Break(());
        }
        let text: String = String::from_utf8_lossy(text)
            .trim()
            .chars()
            .take(KEPT_MESSAGE_CHARS)
            .collect();
        if (is_error || text.starts_with("error") || text.starts_with("fatal"))
            && self.errors.len() < KEPT_ERROR_MESSAGES
        {
            self.errors.push(text);
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Why a report-status could not be read.
#[derive(Debug)]
enum ReportStatusFailure {
    Read(io::Error),
    TooLarge(AnswerLimit),
    Malformed(String),
}

/// Reads the target's answer to a push of `commands` (pkt-lines when `side_band`, else the payloads
/// one after the other) up to its limits, and, when `report_status` was asked for, parses it:
/// `Ok(Err(reason))` when unpacking failed, else the refused refs with reasons.
fn read_report_status(
    answer: &mut dyn Read,
    side_band: bool,
    report_status: bool,
    commands: &[Command],
) -> Result<Result<Vec<(String, String)>, String>, ReportStatusFailure> {
    let limits = ReportStatusLimits::for_commands(commands.len());
    let answer = read_to_end_limited(answer, limits.bytes)
        .map_err(ReportStatusFailure::Read)?
        .map_err(ReportStatusFailure::TooLarge)?;
    if !report_status {
        return Ok(Ok(Vec::new()));
    }
    let lines: Vec<String> = if side_band {
        pktline::decode_all(&answer)
            .ok_or_else(|| {
                ReportStatusFailure::Malformed(
                    String::from_utf8_lossy(&answer)
                        .chars()
                        .take(MALFORMED_EXCERPT_CHARS)
                        .collect(),
                )
            })?
            .into_iter()
            .map(|l| String::from_utf8_lossy(l).trim_end().to_owned())
            .collect()
    } else {
        String::from_utf8_lossy(&answer)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    if lines.len() > limits.lines {
        return Err(ReportStatusFailure::TooLarge(AnswerLimit::Lines(
            limits.lines,
        )));
    }
    parse_report_status(&lines, commands).map_err(ReportStatusFailure::Malformed)
}

/// Reads report-status lines: `Err(reason)` when unpacking failed, else the refused refs with reasons.
/// A command with no status line at all counts as refused.
fn parse_report_status(
    lines: &[String],
    commands: &[Command],
) -> Result<Result<Vec<(String, String)>, String>, String> {
    let mut lines = lines.iter();
    let first = lines.next().ok_or("the target sent no report-status")?;
    let unpack = first
        .strip_prefix("unpack ")
        .ok_or_else(|| format!("expected an unpack status, got {first:?}"))?;
    if unpack != "ok" {
        return Ok(Err(unpack.to_owned()));
    }
    let mut statuses = std::collections::HashMap::new();
    for line in lines {
        if let Some(name) = line.strip_prefix("ok ") {
            statuses.insert(name.to_owned(), None);
        } else if let Some(rest) = line.strip_prefix("ng ") {
            let (name, reason) = rest.split_once(' ').unwrap_or((rest, "refused"));
            statuses.insert(name.to_owned(), Some(reason.to_owned()));
        } else {
            return Err(format!("unexpected report-status line {line:?}"));
        }
    }
    Ok(Ok(commands
        .iter()
        .filter_map(|c| match statuses.get(&c.name) {
            Some(None) => None,
            Some(Some(reason)) => Some((c.name.clone(), reason.clone())),
            None => Some((
                c.name.clone(),
                "the target reported no status for this ref".into(),
            )),
        })
        .collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gix::ObjectId;

    fn command(name: &str) -> Command {
        Command {
            name: name.into(),
            old: ObjectId::null(gix::hash::Kind::Sha1),
            new: ObjectId::null(gix::hash::Kind::Sha1),
        }
    }

    #[test]
    fn report_status_is_parsed() {
        let lines: Vec<String> = [
            "unpack ok",
            "ok refs/heads/a",
            "ng refs/heads/b non-fast-forward",
        ]
        .map(String::from)
        .to_vec();
        let cmds = [
            command("refs/heads/a"),
            command("refs/heads/b"),
            command("refs/heads/c"),
        ];
        let rejected = parse_report_status(&lines, &cmds).unwrap().unwrap();
        assert_eq!(
            rejected,
            vec![
                ("refs/heads/b".to_string(), "non-fast-forward".to_string()),
                (
                    "refs/heads/c".to_string(),
                    "the target reported no status for this ref".to_string()
                )
            ]
        );
        let unpack =
            parse_report_status(&["unpack index-pack abnormal exit".into()], &cmds).unwrap();
        assert_eq!(unpack, Err("index-pack abnormal exit".to_string()));
        assert!(parse_report_status(&[], &cmds).is_err());
        assert!(parse_report_status(&["garbage".into()], &cmds).is_err());
    }
}

#[cfg(test)]
mod reading_tests {
    use super::super::answer_limits::REPORT_STATUS_EXTRA_LINES;
    use super::*;
    use crate::git::chunked::Chunked;
    use gix::ObjectId;
    use proptest::prelude::*;

    fn commands(count: usize) -> Vec<Command> {
        (0..count)
            .map(|i| Command {
                name: format!("refs/heads/b{i}"),
                old: ObjectId::null(gix::hash::Kind::Sha1),
                new: ObjectId::null(gix::hash::Kind::Sha1),
            })
            .collect()
    }

    /// The answer as the target sends it: pkt-lines and a flush (side-band), or the payloads alone.
    fn answer(lines: &[String], side_band: bool) -> Vec<u8> {
        let mut bytes = Vec::new();
        for line in lines {
            let line = format!("{line}\n");
            if side_band {
                bytes.extend(pktline::encode(line.as_bytes()));
            } else {
                bytes.extend_from_slice(line.as_bytes());
            }
        }
        if side_band {
            bytes.extend_from_slice(pktline::FLUSH);
        }
        bytes
    }

    fn too_large(
        result: Result<Result<Vec<(String, String)>, String>, ReportStatusFailure>,
    ) -> AnswerLimit {
        match result {
            Err(ReportStatusFailure::TooLarge(limit)) => limit,
            other => panic!("not over a limit: {other:?}"),
        }
    }

    #[test]
    fn a_line_more_than_the_limit_allows_is_refused() {
        let cmds = commands(3);
        let limits = ReportStatusLimits::for_commands(3);
        assert_eq!(limits.lines, 3 + REPORT_STATUS_EXTRA_LINES);
        let mut lines = vec!["unpack ok".to_string()];
        lines.extend((0..limits.lines - 1).map(|i| format!("ok refs/heads/b{}", i % 3)));
        for side_band in [true, false] {
            let at_limit = answer(&lines, side_band);
            let read = read_report_status(&mut &at_limit[..], side_band, true, &cmds);
            assert_eq!(read.expect("at the limit").expect("unpacked"), Vec::new());

            let mut over = lines.clone();
            over.push("ok refs/heads/b0".into());
            let over = answer(&over, side_band);
            let read = read_report_status(&mut &over[..], side_band, true, &cmds);
            assert_eq!(too_large(read), AnswerLimit::Lines(limits.lines));
        }
    }

    #[test]
    fn an_answer_over_its_byte_limit_is_refused_without_reading_on() {
        let cmds = commands(2);
        let limits = ReportStatusLimits::for_commands(2);
        let mut endless = io::repeat(b'0');
        let read = read_report_status(&mut endless, true, true, &cmds);
        assert_eq!(too_large(read), AnswerLimit::Bytes(limits.bytes));
        // Even when report-status was not asked for, the answer is read to its limit only.
        let read = read_report_status(&mut io::repeat(b'x'), false, false, &cmds);
        assert_eq!(too_large(read), AnswerLimit::Bytes(limits.bytes));

        let exactly = vec![b'x'; limits.bytes as usize];
        assert!(read_report_status(&mut &exactly[..], false, false, &cmds).is_ok());
    }

    #[test]
    fn side_band_messages_stop_the_transfer_once_over_their_limit() {
        let mut messages = RemoteMessages::default();
        let chunk = vec![b'.'; 64 * 1024];
        let mut sent = 0u64;
        while messages.note(false, &chunk).is_continue() {
            sent += chunk.len() as u64;
            assert!(
                sent <= MAX_SIDE_BAND_MESSAGE_BYTES,
                "went on past the limit"
            );
        }
        assert!(messages.over_limit);
        assert!(sent + chunk.len() as u64 > MAX_SIDE_BAND_MESSAGE_BYTES);

        let mut messages = RemoteMessages::default();
        for i in 0..100 {
            assert!(messages
                .note(true, format!("error {i}").as_bytes())
                .is_continue());
        }
        assert_eq!(
            messages.errors.len(),
            KEPT_ERROR_MESSAGES,
            "only the first errors are kept"
        );
        assert!(!messages.over_limit);
        let mut messages = RemoteMessages::default();
        let _ = messages.note(true, &[b'e'; 60_000]);
        assert_eq!(
            messages.errors[0].len(),
            KEPT_MESSAGE_CHARS,
            "and only their start"
        );
    }

    /// What a command's status line says: ok, refused with a reason, or nothing.
    #[derive(Debug, Clone)]
    enum Status {
        Ok,
        Refused(String),
        Missing,
    }

    fn status() -> impl Strategy<Value = Status> {
        prop_oneof![
            Just(Status::Ok),
            "[a-z][a-z -]{0,20}[a-z]".prop_map(Status::Refused),
            Just(Status::Missing),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn valid_answers_read_the_same_however_they_are_split(
            statuses in proptest::collection::vec(status(), 0..12),
            unpack_failure in proptest::option::weighted(0.2, "[a-z][a-z -]{0,30}[a-z]"),
            side_band in any::<bool>(),
            sizes in proptest::collection::vec(0usize..40, 1..10),
        ) {
            let cmds = commands(statuses.len());
            let mut lines = vec![match &unpack_failure {
                Some(reason) => format!("unpack {reason}"),
                None => "unpack ok".to_string(),
            }];
            let mut expected = Vec::new();
            for (command, status) in cmds.iter().zip(&statuses) {
                match status {
                    Status::Ok => lines.push(format!("ok {}", command.name)),
                    Status::Refused(reason) => {
                        lines.push(format!("ng {} {reason}", command.name));
                        expected.push((command.name.clone(), reason.clone()));
                    }
                    Status::Missing => expected.push((
                        command.name.clone(),
                        "the target reported no status for this ref".to_string(),
                    )),
                }
            }
            let bytes = answer(&lines, side_band);
            let mut reader = Chunked::new(&bytes, &sizes);
            let read = read_report_status(&mut reader, side_band, true, &cmds)
                .map_err(|failure| format!("{failure:?}"));
            match unpack_failure {
                Some(reason) => prop_assert_eq!(read, Ok(Err(reason))),
                None => prop_assert_eq!(read, Ok(Ok(expected))),
            }
        }

        #[test]
        fn arbitrary_answers_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            count in 0usize..4,
            side_band in any::<bool>(),
            sizes in proptest::collection::vec(0usize..40, 1..10),
        ) {
            let cmds = commands(count);
            let mut reader = Chunked::new(&bytes, &sizes);
            let _ = read_report_status(&mut reader, side_band, true, &cmds);
        }

        #[test]
        fn answers_made_of_report_status_words_never_panic(
            lines in proptest::collection::vec(
                prop_oneof![
                    Just("unpack ok".to_string()),
                    "unpack [ -~]{0,10}",
                    "ok [ -~]{0,20}",
                    "ng [ -~]{0,20}",
                    "ng",
                    "[ -~]{0,10}",
                ],
                0..10,
            ),
            side_band in any::<bool>(),
        ) {
            let cmds = commands(3);
            let bytes = answer(&lines, side_band);
            let _ = read_report_status(&mut &bytes[..], side_band, true, &cmds);
        }
    }
}
