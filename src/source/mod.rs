//! Where repositories come from: GitHub's REST API (listing, filtering, ancestry answers) and the
//! credentials git uses to read them.

pub mod filter;
pub mod github;

pub use filter::{select, Filter, Selection};
pub use github::{GitHub, GitHubAuth, SourceError, SourceRepo};
