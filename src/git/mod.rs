//! The git wire protocol over smart HTTP, built on gix-transport: refs of a source (protocol v2
//! `ls-refs`), refs and capabilities of a target (receive-pack advertisement), a fetch whose pack streams
//! straight into the target's `git-receive-pack` request, and the target's report-status.
//!
//! gix has no push; everything push-side is written here on gix-transport's generic request API.
//!
//! Packs themselves: [`pack_stream`] checks a pack in flight, [`index_pack`] indexes one into a local
//! repository.

pub mod answer_limits;
#[cfg(test)]
mod chunked;
mod connection;
mod error;
pub mod index_pack;
pub mod pack_stream;
mod pktline;
pub mod receive_pack;
pub mod stall;
mod tls;
pub mod upload_pack;

pub use connection::{Credentials, Endpoint};
pub use error::GitError;
pub use stall::{Stall, StallGuard};
