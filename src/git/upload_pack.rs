//! The source side: refs by protocol v2 `ls-refs` (branches and tags, peeled, plus where HEAD points;
//! names checked, the invalid ones set apart), and one `fetch` with explicit wants and haves whose
//! pack is handed out as a stream.

use std::io::{self, BufRead, Read};
use std::sync::{Arc, Mutex};

use gix::protocol::transport::client::blocking_io::{
    ExtendedBufRead, ReadlineBufRead, Transport, TransportV2Ext,
};
use gix::protocol::transport::client::Capabilities;
use gix::protocol::transport::{Protocol, Service};

use super::answer_limits::{AdvertisementLimits, Answer, AnswerLimit};
use super::connection::HttpTransport;
use super::error::describe;
use super::{Endpoint, GitError};
use crate::refs::{
    checked_name, is_mirrored_raw, InvalidRef, ObjectId, RefMap, RefValue, HEADS, TAGS,
};
use ls_refs::AdvertisedRef;

mod ls_refs;

/// What the source advertises.
#[derive(Debug, Clone, Default)]
pub struct SourceRefs {
    /// Branches and tags, annotated tags peeled.
    pub refs: RefMap,
    /// The branch HEAD points at (the default branch), if any.
    pub head: Option<String>,
    /// Branches and tags advertised under names that are not valid ref names or not UTF-8, ordered
    /// by their escaped names: reported, never mirrored.
    pub invalid: Vec<InvalidRef>,
}

impl SourceRefs {
    /// Takes in one advertised ref: HEAD's target, a branch or tag under a valid name, or an invalid
    /// one. Other namespaces and symbolic branches are not mirrored and are left out.
    fn record(&mut self, advertised: AdvertisedRef) {
        let AdvertisedRef {
            name,
            oid,
            peeled,
            symref_target,
        } = advertised;
        // `(null)` marks a symbolic ref whose target lies outside the served namespace.
        let symref_target = symref_target.filter(|target| target.as_slice() != b"(null)");
        if name == b"HEAD" {
            self.head = symref_target.and_then(|target| checked_name(&target).ok());
            return;
        }
        let (Some(oid), None, true) = (oid, &symref_target, is_mirrored_raw(&name)) else {
            return;
        };
        match checked_name(&name) {
            Ok(name) => {
                self.refs.insert(name, RefValue { oid, peeled });
            }
            Err(problem) => self
                .invalid
                .push(InvalidRef::new(&name, Some(oid), problem)),
        }
    }
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

    /// Lists branches, tags and HEAD. Each name is checked ([`crate::refs::checked_name`]): a branch or
    /// tag under a name the mirror cannot use lands in [`SourceRefs::invalid`], never in the map.
    pub fn list_refs(&mut self) -> Result<SourceRefs, GitError> {
        self.list_refs_within(AdvertisementLimits::for_source())
    }

    /// [`SourceConnection::list_refs`], reading at most `limits.refs` refs and `limits.bytes` bytes
    /// of answer: more fails with [`GitError::AnswerTooLarge`].
    pub fn list_refs_within(
        &mut self,
        limits: AdvertisementLimits,
    ) -> Result<SourceRefs, GitError> {
        let url = self.url.clone();
        let list_error = |message: String| GitError::ListRefs {
            url: url.clone(),
            message,
        };
        let mut arguments: Vec<gix::bstr::BString> = vec!["symrefs".into(), "peel".into()];
        if self
            .capabilities
            .capability("ls-refs")
            .and_then(|c| c.supports("unborn"))
            .unwrap_or(false)
        {
            arguments.push("unborn".into());
        }
        arguments.extend([HEADS, TAGS, "HEAD"].map(|prefix| format!("ref-prefix {prefix}").into()));
        let features = self.command_features();
        let mut reader = self
            .transport
            .invoke(
                "ls-refs",
                features.into_iter(),
                Some(arguments.into_iter()),
                false,
            )
            .map_err(|err| list_error(describe(&err)))?;
        let mut out = SourceRefs::default();
        let mut lines = 0usize;
        let mut bytes = 0u64;
        let too_large = |limit| GitError::AnswerTooLarge {
            url: url.clone(),
            answer: Answer::SourceRefListing,
            limit,
        };
        while let Some(line) = reader.readline() {
            let line = line
                .map_err(|err| list_error(describe(&err)))?
                .map_err(|err| list_error(describe(&err)))?;
            let Some(data) = line.as_slice() else { break };
            lines += 1;
            bytes += data.len() as u64;
            if lines > limits.refs {
                return Err(too_large(AnswerLimit::Refs(limits.refs)));
            }
            if bytes > limits.bytes {
                return Err(too_large(AnswerLimit::Bytes(limits.bytes)));
            }
            let advertised =
                ls_refs::parse_line(data).map_err(|err| list_error(err.to_string()))?;
            out.record(advertised);
        }
        out.invalid.sort_by(|a, b| a.name.cmp(&b.name));
        out.invalid.dedup_by(|a, b| a.name == b.name);
        Ok(out)
    }

    /// The capabilities every v2 command sends: the agent, and the server's object format echoed.
    fn command_features(&self) -> Vec<(&'static str, Option<String>)> {
        let mut features = vec![agent()];
        if let Some(format) = self
            .capabilities
            .capability("object-format")
            .and_then(|c| c.value().map(|v| v.to_string()))
        {
            features.push(("object-format", Some(format)));
        }
        features
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
        let features = self.command_features();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn advertised(
        name: &[u8],
        oid: Option<ObjectId>,
        symref_target: Option<&[u8]>,
    ) -> AdvertisedRef {
        AdvertisedRef {
            name: name.to_vec(),
            oid,
            peeled: None,
            symref_target: symref_target.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn invalid_names_are_set_apart_and_never_collide() {
        let one = ObjectId::from_hex(b"1111111111111111111111111111111111111111").unwrap();
        let mut refs = SourceRefs::default();
        for name in [
            &b"refs/heads/main"[..],
            b"refs/heads/\xff",
            b"refs/heads/\xfe",
            b"refs/heads/a..b",
            b"refs/tags/v1.lock",
            b"refs/pull/1/head",
            b"refs/heads/\xff\0",
        ] {
            refs.record(advertised(name, Some(one), None));
        }
        refs.record(advertised(
            b"refs/heads/alias",
            Some(one),
            Some(b"refs/heads/main"),
        ));
        refs.record(advertised(b"HEAD", Some(one), Some(b"refs/heads/main")));
        assert_eq!(refs.refs.keys().collect::<Vec<_>>(), ["refs/heads/main"]);
        assert_eq!(refs.head.as_deref(), Some("refs/heads/main"));
        let invalid: Vec<(&str, String)> = refs
            .invalid
            .iter()
            .map(|r| (r.name.as_str(), r.problem.to_string()))
            .collect();
        assert_eq!(invalid.len(), 5, "{invalid:?}");
        assert!(invalid.contains(&("refs/heads/\\xff", "not valid UTF-8".into())));
        assert!(invalid.contains(&("refs/heads/\\xfe", "not valid UTF-8".into())));
        assert!(invalid.iter().any(
            |(name, why)| *name == "refs/heads/a..b" && why.starts_with("not a valid ref name")
        ));
        assert!(invalid
            .iter()
            .any(|(name, why)| *name == "refs/tags/v1.lock"
                && why.starts_with("not a valid ref name")));
        assert!(invalid
            .iter()
            .any(|(name, why)| *name == "refs/heads/\\xff\\x00"
                && why.starts_with("not a valid ref name")));
    }

    #[test]
    fn an_invalid_head_target_names_no_default_branch() {
        let mut refs = SourceRefs::default();
        refs.record(advertised(b"HEAD", None, Some(b"refs/heads/bad..name")));
        assert_eq!(refs.head, None);
        refs.record(advertised(b"HEAD", None, Some(b"refs/heads/trunk")));
        assert_eq!(refs.head.as_deref(), Some("refs/heads/trunk"));
    }
}
