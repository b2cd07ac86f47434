//! The source side: refs by protocol v2 `ls-refs` (branches and tags, peeled, plus where HEAD points;
//! names checked, the invalid ones set apart), and one `fetch` with explicit wants and haves whose
//! pack is handed out as a stream.

use std::io::{self, BufRead, Read, Write};
use std::sync::{Arc, Mutex};

use gix::protocol::transport::client::blocking_io::http::{Http, PostBodyDataKind};
use gix::protocol::transport::client::blocking_io::{
    ExtendedBufRead, ReadlineBufRead, Transport, TransportV2Ext,
};
use gix::protocol::transport::client::Capabilities;
use gix::protocol::transport::packetline::PacketLineRef;
use gix::protocol::transport::{Protocol, Service};

use super::answer_limits::{AdvertisementLimits, Answer, AnswerLimit};
use super::connection::{HttpTransport, USER_AGENT};
use super::error::describe;
use super::pktline;
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
///
/// Protocol v2 over HTTP is stateless: a command can be sent without first asking for the server's
/// capabilities. So `ls-refs` goes out as the connection's first and, when the mirror is up to date,
/// only request ([`SourceConnection::list_refs`]); the capability advertisement (`info/refs`) is asked
/// for only when a pack is to be fetched, or when a server does not take the direct request (it is
/// then asked for, and `ls-refs` sent again as git sends it).
pub struct SourceConnection {
    url: String,
    endpoint: Endpoint,
    transport: HttpTransport,
    /// The server's capabilities, once asked for.
    capabilities: Option<Capabilities>,
}

impl SourceConnection {
    /// Prepares the connection; nothing goes over the network yet.
    pub fn open(endpoint: &Endpoint) -> Result<Self, GitError> {
        Ok(SourceConnection {
            url: endpoint.url.clone(),
            endpoint: endpoint.clone(),
            transport: endpoint.connect(Protocol::V2)?,
            capabilities: None,
        })
    }

    /// Asks for the server's capabilities (once) and checks that it speaks protocol v2.
    fn capabilities(&mut self) -> Result<&Capabilities, GitError> {
        if self.capabilities.is_none() {
            let response = self
                .transport
                .handshake(Service::UploadPack, &[])
                .map_err(|err| GitError::handshake(&self.url, &err))?;
            if response.actual_protocol != Protocol::V2 {
                return Err(GitError::ProtocolVersion {
                    url: self.url.clone(),
                    version: response.actual_protocol,
                });
            }
            let capabilities = response.capabilities;
            self.capabilities = Some(capabilities);
        }
        self.capabilities
            .as_ref()
            .ok_or_else(|| GitError::ListRefs {
                url: self.url.clone(),
                message: "no capabilities".into(),
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
        if self.capabilities.is_none() {
            match self.list_refs_directly(limits) {
                Ok(listed) => return Ok(listed),
                // A limit is the peer's answer, not a refusal of the direct request.
                Err(err @ GitError::AnswerTooLarge { .. }) => return Err(err),
                // Any other failure: ask as git does, which also names the failure as git would.
                Err(_) => {}
            }
        }
        self.list_refs_after_handshake(limits)
    }

    /// `ls-refs` as one stateless request, without the capability advertisement first.
    fn list_refs_directly(&self, limits: AdvertisementLimits) -> Result<SourceRefs, GitError> {
        let list_error = |message: String| GitError::ListRefs {
            url: self.url.clone(),
            message,
        };
        let mut client = self.endpoint.http_client()?;
        let mut headers = vec![
            format!("User-Agent: {USER_AGENT}"),
            "Content-Type: application/x-git-upload-pack-request".to_owned(),
            "Accept: application/x-git-upload-pack-result".to_owned(),
            "Git-Protocol: version=2".to_owned(),
        ];
        headers.extend(self.endpoint.authorization_header());
        let url = format!("{}/git-upload-pack", self.url.trim_end_matches('/'));
        let response = Http::post(
            &mut client,
            &url,
            &self.url,
            headers,
            PostBodyDataKind::BoundedAndFitsIntoMemory,
        )
        .map_err(|err| list_error(describe(&err)))?;
        let mut request = response.post_body;
        request
            .write_all(&ls_refs_request(&ls_refs_arguments(false)))
            .and_then(|()| request.flush())
            .map_err(|err| list_error(err.to_string()))?;
        drop(request);
        let mut answer_headers = String::new();
        let mut head = response.headers;
        head.read_to_string(&mut answer_headers)
            .map_err(|err| list_error(err.to_string()))?;
        let smart = answer_headers.lines().any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.eq_ignore_ascii_case("content-type")
                    && value.trim() == "application/x-git-upload-pack-result"
            })
        });
        if !smart {
            return Err(list_error("not a protocol v2 ls-refs answer".into()));
        }
        let mut lines =
            gix::protocol::transport::packetline::blocking_io::StreamingPeekableIter::new(
                response.body,
                &[PacketLineRef::Flush],
                false,
            );
        lines.fail_on_err_lines(true);
        let mut collected = RefCollector::new(&self.url, limits);
        while let Some(line) = lines.read_line() {
            let line = line
                .map_err(|err| list_error(err.to_string()))?
                .map_err(|err| list_error(err.to_string()))?;
            let Some(data) = line.as_slice() else { break };
            collected.take(data)?;
        }
        Ok(collected.finish())
    }

    /// `ls-refs` after the capability advertisement, as git sends it.
    fn list_refs_after_handshake(
        &mut self,
        limits: AdvertisementLimits,
    ) -> Result<SourceRefs, GitError> {
        let url = self.url.clone();
        let list_error = |message: String| GitError::ListRefs {
            url: url.clone(),
            message,
        };
        let unborn = self
            .capabilities()?
            .capability("ls-refs")
            .and_then(|c| c.supports("unborn"))
            .unwrap_or(false);
        let arguments = ls_refs_arguments(unborn)
            .into_iter()
            .map(gix::bstr::BString::from);
        let features = self.command_features();
        let mut reader = self
            .transport
            .invoke("ls-refs", features.into_iter(), Some(arguments), false)
            .map_err(|err| list_error(describe(&err)))?;
        let mut collected = RefCollector::new(&url, limits);
        while let Some(line) = reader.readline() {
            let line = line
                .map_err(|err| list_error(describe(&err)))?
                .map_err(|err| list_error(describe(&err)))?;
            let Some(data) = line.as_slice() else { break };
            collected.take(data)?;
        }
        Ok(collected.finish())
    }

    /// The capabilities every v2 command sends: the agent, and the server's object format echoed.
    fn command_features(&self) -> Vec<(&'static str, Option<String>)> {
        let mut features = vec![agent()];
        if let Some(format) = self
            .capabilities
            .as_ref()
            .and_then(|capabilities| capabilities.capability("object-format"))
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
        self.capabilities()?;
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

/// The arguments of every `ls-refs`: symbolic refs and peeled tags, only branches, tags and HEAD;
/// `unborn` (an empty repository's HEAD) when the server said it supports it.
fn ls_refs_arguments(unborn: bool) -> Vec<String> {
    let mut arguments = vec!["symrefs".to_owned(), "peel".to_owned()];
    if unborn {
        arguments.push("unborn".to_owned());
    }
    arguments.extend([HEADS, TAGS, "HEAD"].map(|prefix| format!("ref-prefix {prefix}")));
    arguments
}

/// The body of a stateless `ls-refs` request: the command and its capabilities (the agent; SHA-1, the
/// only object format repo-mirror handles, so a SHA-256 server refuses rather than answers in
/// hashes the mirror cannot use), a delimiter, the arguments, a flush.
fn ls_refs_request(arguments: &[String]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(pktline::encode(b"command=ls-refs\n"));
    if let (name, Some(value)) = agent() {
        body.extend(pktline::encode(format!("{name}={value}\n").as_bytes()));
    }
    body.extend(pktline::encode(b"object-format=sha1\n"));
    body.extend_from_slice(pktline::DELIMITER);
    for argument in arguments {
        body.extend(pktline::encode(format!("{argument}\n").as_bytes()));
    }
    body.extend_from_slice(pktline::FLUSH);
    body
}

/// Gathers an `ls-refs` answer line by line, within its limits.
struct RefCollector<'a> {
    url: &'a str,
    limits: AdvertisementLimits,
    lines: usize,
    bytes: u64,
    out: SourceRefs,
}

impl<'a> RefCollector<'a> {
    fn new(url: &'a str, limits: AdvertisementLimits) -> Self {
        RefCollector {
            url,
            limits,
            lines: 0,
            bytes: 0,
            out: SourceRefs::default(),
        }
    }

    fn take(&mut self, data: &[u8]) -> Result<(), GitError> {
        let too_large = |limit| GitError::AnswerTooLarge {
            url: self.url.to_owned(),
            answer: Answer::SourceRefListing,
            limit,
        };
        self.lines += 1;
        self.bytes += data.len() as u64;
        if self.lines > self.limits.refs {
            return Err(too_large(AnswerLimit::Refs(self.limits.refs)));
        }
        if self.bytes > self.limits.bytes {
            return Err(too_large(AnswerLimit::Bytes(self.limits.bytes)));
        }
        let advertised = ls_refs::parse_line(data).map_err(|err| GitError::ListRefs {
            url: self.url.to_owned(),
            message: err.to_string(),
        })?;
        self.out.record(advertised);
        Ok(())
    }

    fn finish(mut self) -> SourceRefs {
        self.out.invalid.sort_by(|a, b| a.name.cmp(&b.name));
        self.out.invalid.dedup_by(|a, b| a.name == b.name);
        self.out
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
