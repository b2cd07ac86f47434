//! The source side: refs by protocol v2 `ls-refs` (branches and tags, peeled, plus where HEAD points),
//! and one `fetch` with explicit wants and haves whose pack is handed out as a stream.

use std::io::{self, BufRead, Read};
use std::sync::{Arc, Mutex};

use gix::protocol::handshake::Ref;
use gix::protocol::transport::client::blocking_io::{ExtendedBufRead, Transport, TransportV2Ext};
use gix::protocol::transport::client::Capabilities;
use gix::protocol::transport::{Protocol, Service};

use super::connection::HttpTransport;
use super::error::describe;
use super::{Endpoint, GitError};
use crate::refs::{ObjectId, RefMap, RefValue, HEADS, TAGS};

/// What the source advertises.
#[derive(Debug, Clone, Default)]
pub struct SourceRefs {
    /// Branches and tags, annotated tags peeled.
    pub refs: RefMap,
    /// The branch HEAD points at (the default branch), if any.
    pub head: Option<String>,
}

/// A protocol v2 connection to a source repository's upload-pack.
pub struct SourceConnection {
    url: String,
    transport: HttpTransport,
    capabilities: Capabilities,
}

impl SourceConnection {
    pub fn open(endpoint: &Endpoint) -> Result<Self, GitError> {
        let url = endpoint.url.clone();
        let mut transport = endpoint.connect(Protocol::V2)?;
        let (actual_protocol, capabilities) = {
            let response = transport
                .handshake(Service::UploadPack, &[])
                .map_err(|err| GitError::handshake(&url, &err))?;
            (response.actual_protocol, response.capabilities)
        };
        if actual_protocol != Protocol::V2 {
            return Err(GitError::ProtocolVersion {
                url,
                version: actual_protocol,
            });
        }
        Ok(SourceConnection {
            url,
            transport,
            capabilities,
        })
    }

    /// Lists branches, tags and HEAD.
    pub fn list_refs(&mut self) -> Result<SourceRefs, GitError> {
        let mut prefixes = gix::protocol::ls_refs::RefPrefixes::new();
        prefixes.extend([HEADS.into(), TAGS.into(), "HEAD".into()]);
        let command =
            gix::protocol::LsRefsCommand::new(Some(prefixes), &self.capabilities, agent());
        let refs = command
            .invoke_blocking(&mut self.transport, &mut gix::progress::Discard, false)
            .map_err(|err| GitError::ListRefs {
                url: self.url.clone(),
                message: describe(&err),
            })?;
        let mut out = SourceRefs::default();
        for r in refs {
            match r {
                Ref::Direct {
                    full_ref_name,
                    object,
                } => {
                    out.refs
                        .insert(full_ref_name.to_string(), RefValue::direct(object));
                }
                Ref::Peeled {
                    full_ref_name,
                    tag,
                    object,
                } => {
                    out.refs.insert(
                        full_ref_name.to_string(),
                        RefValue {
                            oid: tag,
                            peeled: Some(object),
                        },
                    );
                }
                Ref::Symbolic {
                    full_ref_name,
                    target,
                    ..
                }
                | Ref::Unborn {
                    full_ref_name,
                    target,
                } => {
                    if full_ref_name == "HEAD" {
                        out.head = Some(target.to_string());
                    }
                }
            }
        }
        out.refs.retain(|name, _| crate::refs::is_mirrored(name));
        Ok(out)
    }

    /// Asks for a pack with everything reachable from `wants` that is not reachable from `haves`, in a
    /// form the pack's receiver accepts, and returns it as a stream.
    pub fn fetch(
        &mut self,
        wants: &[ObjectId],
        haves: &[ObjectId],
        form: PackForm,
    ) -> Result<FetchedPack<'_>, GitError> {
        let url = self.url.clone();
        let fetch_error = |message: String| GitError::Fetch {
            url: url.clone(),
            message,
        };
        let mut features = vec![agent()];
        if let Some(format) = self
            .capabilities
            .capability("object-format")
            .and_then(|c| c.value().map(|v| v.to_string()))
        {
            features.push(("object-format", Some(format)));
        }
        let mut arguments: Vec<gix::bstr::BString> = vec!["no-progress".into()];
        if form.ofs_delta {
            arguments.push("ofs-delta".into());
        }
        if form.thin {
            arguments.push("thin-pack".into());
        }
        arguments.extend(wants.iter().map(|oid| format!("want {oid}").into()));
        arguments.extend(haves.iter().map(|oid| format!("have {oid}").into()));
        arguments.push("done".into());
        let mut reader = self
            .transport
            .invoke(
                "fetch",
                features.into_iter(),
                Some(arguments.into_iter()),
                false,
            )
            .map_err(|err| fetch_error(describe(&err)))?;
        let response =
            gix::protocol::fetch::Response::from_line_reader(Protocol::V2, &mut reader, true, true)
                .map_err(|err| fetch_error(describe(&err)))?;
        if !response.has_pack() {
            return Err(fetch_error("the server sent no pack".into()));
        }
        // Without a progress handler side-band bytes are not demultiplexed; with one, the server's fatal
        // messages (band 3) are kept to explain a broken stream.
        let remote_error = Arc::new(Mutex::new(None::<String>));
        let sink = remote_error.clone();
        reader.set_progress_handler(Some(Box::new(move |is_error, text| {
            if is_error {
                if let Ok(mut slot) = sink.lock() {
                    *slot = Some(String::from_utf8_lossy(text).trim().to_owned());
                }
                return std::ops::ControlFlow::Break(());
            }
            std::ops::ControlFlow::Continue(())
        })));
        Ok(FetchedPack {
            reader,
            remote_error,
        })
    }
}

fn agent() -> (&'static str, Option<String>) {
    (
        "agent",
        Some(concat!("repo-mirror/", env!("CARGO_PKG_VERSION")).to_owned()),
    )
}

/// What a pack may contain, as its receiver allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PackForm {
    /// Deltas may name their base by its offset in the pack (smaller than by object id).
    pub ofs_delta: bool,
    /// Deltas may have bases the receiver has but the pack leaves out (a thin pack, as `git push`
    /// sends): the receiver completes the pack from its own objects.
    pub thin: bool,
}

/// The pack section of a fetch response, read as plain bytes.
pub struct FetchedPack<'a> {
    reader: Box<dyn ExtendedBufRead<'a> + Unpin + 'a>,
    remote_error: Arc<Mutex<Option<String>>>,
}

impl Read for FetchedPack<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = match self.reader.fill_buf() {
            Ok(available) => available,
            Err(err) => {
                let remote = self.remote_error.lock().ok().and_then(|slot| slot.clone());
                return Err(match remote {
                    Some(message) => io::Error::other(format!("the source aborted: {message}")),
                    None => err,
                });
            }
        };
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.reader.consume(n);
        Ok(n)
    }
}
