//! The target side: refs (under valid names only) and capabilities from the receive-pack
//! advertisement, and a push — command pkt-lines, a flush, then the pack streamed through — whose
//! report-status is parsed so that every refused ref surfaces with the server's reason.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use gix::protocol::handshake::Ref;
use gix::protocol::transport::client::blocking_io::Transport;
use gix::protocol::transport::client::{MessageKind, WriteMode};
use gix::protocol::transport::{Protocol, Service};

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
            let (advertised, _) = gix::protocol::handshake::refs::from_v1_refs_received_as_part_of_handshake_and_capabilities(
                reader.as_mut(),
                response.capabilities.iter(),
            )
            .map_err(|err| handshake_error(format!("could not read the advertised refs: {err}")))?;
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
            let mut answer = String::new();
            let _ = reader.read_to_string(&mut answer);
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

        let remote_messages = Arc::new(Mutex::new(Vec::<String>::new()));
        if side_band {
            let sink = remote_messages.clone();
            reader.set_progress_handler(Some(Box::new(move |is_error, text| {
                let text = String::from_utf8_lossy(text).trim().to_owned();
                if let Ok(mut messages) = sink.lock() {
                    if is_error || text.starts_with("error") || text.starts_with("fatal") {
                        messages.push(text);
                    }
                }
                std::ops::ControlFlow::Continue(())
            })));
        }
        let mut answer = Vec::new();
        let read = reader.read_to_end(&mut answer);
        let messages = remote_messages
            .lock()
            .map(|m| m.join("; "))
            .unwrap_or_default();
        if let Err(err) = read {
            let detail = if messages.is_empty() {
                String::new()
            } else {
                format!(" (target said: {messages})")
            };
            return Err(push_error(format!("{err}{detail}")));
        }
        if !report_status {
            return Ok(PushOutcome {
                rejected: Vec::new(),
                pack_bytes,
            });
        }
        let lines: Vec<String> = if side_band {
            pktline::decode_all(&answer)
                .ok_or_else(|| GitError::ReportStatus {
                    url: self.url.clone(),
                    message: String::from_utf8_lossy(&answer).into_owned(),
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
        let outcome = parse_report_status(&lines, commands).map_err(|message| {
            let message = if messages.is_empty() {
                message
            } else {
                format!("{message} (target said: {messages})")
            };
            GitError::ReportStatus {
                url: self.url.clone(),
                message,
            }
        })?;
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
