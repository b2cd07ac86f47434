//! End-to-end tests: the real binary against real `git http-backend` servers and the GitHub API fake,
//! every result judged by git itself (`for-each-ref`, `fsck --full --strict`).

mod support;

#[path = "e2e/adoption_and_backups.rs"]
mod adoption_and_backups;
#[path = "e2e/answer_limits.rs"]
mod answer_limits;
#[path = "e2e/codecommit_target.rs"]
mod codecommit_target;
#[path = "e2e/dir_safety.rs"]
mod dir_safety;
#[path = "e2e/dir_target.rs"]
mod dir_target;
#[path = "e2e/aws_services.rs"]
mod e2e_aws;
#[path = "e2e/fault_soak.rs"]
mod fault_soak;
#[path = "e2e/github_app_tokens.rs"]
mod github_app_tokens;
#[path = "e2e/http_target.rs"]
mod http_target;
#[path = "e2e/https_connections.rs"]
mod https_connections;
#[path = "e2e/lambda_function.rs"]
mod lambda_function;
#[path = "e2e/listing_guards.rs"]
mod listing_guards;
#[path = "e2e/ref_names.rs"]
mod ref_names;
#[path = "e2e/secrets_sweep.rs"]
mod secrets_sweep;
#[path = "e2e/settings_and_source.rs"]
mod settings_and_source;
#[path = "e2e/timeouts.rs"]
mod timeouts;
