//! repo-mirror: keeps private mirrors of a GitHub organisation's repositories — every branch and tag —
//! in AWS CodeCommit, local bare repositories or any smart-HTTP git host, by streaming each pack from
//! the source's upload-pack straight into the target's receive-pack: no git binary, no disk, no wasted
//! transfer.
//!
//! Data flows one way: settings → repository list → per repository: refs of both sides → plan →
//! transfer → verify → outcome → report → log, metrics, return value. [`run::run`] is one whole run; the
//! command line (`main.rs`) and the Lambda handler are thin shells around it.

pub mod adoption;
pub mod aws_timeouts;
pub mod cancel;
pub mod cli;
pub mod git;
pub mod job;
pub mod lambda;
pub mod metrics;
pub mod plan;
pub mod refs;
pub mod report;
pub mod run;
pub mod secrets;
pub mod settings;
pub mod shown_url;
pub mod source;
pub mod target;
