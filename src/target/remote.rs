//! Smart-HTTP targets (a URL template, and CodeCommit's git endpoint): refs from the receive-pack
//! advertisement, each push on a fresh connection.

use std::io::Read;

use super::{Mirror, TargetError};
use crate::git::receive_pack::{PushOutcome, TargetConnection};
use crate::git::upload_pack::PackForm;
use crate::git::Endpoint;
use crate::plan::Command;
use crate::refs::RefMap;

/// A repository on a smart-HTTP git host.
pub struct RemoteMirror {
    /// Gives the endpoint for each new connection (CodeCommit signs every one afresh).
    endpoint: Box<dyn Fn() -> Result<Endpoint, TargetError> + Send>,
    connection: Option<TargetConnection>,
    refs: RefMap,
    pack_form: PackForm,
}

impl RemoteMirror {
    pub fn open(endpoint: Endpoint) -> Result<Self, TargetError> {
        Self::open_with(Box::new(move || Ok(endpoint.clone())))
    }

    /// Opens with an endpoint computed for every connection.
    pub fn open_with(
        endpoint: Box<dyn Fn() -> Result<Endpoint, TargetError> + Send>,
    ) -> Result<Self, TargetError> {
        let connection = TargetConnection::open(&endpoint()?)?;
        let refs = connection.refs().clone();
        // Like `git push`: thin packs unless the host says `no-thin` (receive-pack completes them).
        let pack_form = PackForm {
            ofs_delta: connection.supports("ofs-delta"),
            thin: !connection.supports("no-thin"),
        };
        Ok(RemoteMirror {
            endpoint,
            connection: Some(connection),
            refs,
            pack_form,
        })
    }
}

impl Mirror for RemoteMirror {
    fn refs(&self) -> &RefMap {
        &self.refs
    }

    fn pack_form(&self) -> PackForm {
        self.pack_form
    }

    fn apply(
        &mut self,
        commands: &[Command],
        pack: Option<&mut dyn Read>,
    ) -> Result<PushOutcome, TargetError> {
        let connection = match self.connection.take() {
            Some(connection) => connection,
            None => TargetConnection::open(&(self.endpoint)()?)?,
        };
        Ok(connection.push(commands, pack)?)
    }

    fn reread_refs(&mut self) -> Result<&RefMap, TargetError> {
        let connection = TargetConnection::open(&(self.endpoint)()?)?;
        self.refs = connection.refs().clone();
        Ok(&self.refs)
    }
}
