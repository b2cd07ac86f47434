//! Scanning output for secrets: each known secret value in the forms it could leak in — as it is,
//! percent-encoded, inside a Basic `Authorization` value (base64 of `user:password`) — and anything
//! shaped like a CodeCommit SigV4 git password (`YYYYMMDDTHHMMSSZ` + 64 hex digits), which the
//! product computes and a test cannot know in advance.

use std::sync::LazyLock;

use super::git_server::{base64_encode, percent_encode};

/// A secret and the forms it is looked for in.
#[derive(Debug, Clone)]
pub struct Secret {
    /// What the test calls it, for the failure message.
    pub name: &'static str,
    forms: Vec<String>,
}

impl Secret {
    /// A secret value: found as it is or percent-encoded.
    pub fn value(name: &'static str, value: &str) -> Secret {
        let mut forms = vec![value.to_owned()];
        let encoded = percent_encode(value);
        if encoded != value {
            forms.push(encoded);
        }
        Secret { name, forms }
    }

    /// A Basic-auth pair: the password in the forms of [`Secret::value`], and the pair as a Basic
    /// `Authorization` value carries it.
    pub fn basic(name: &'static str, user: &str, password: &str) -> Secret {
        let mut secret = Secret::value(name, password);
        secret
            .forms
            .push(base64_encode(format!("{user}:{password}").as_bytes()));
        secret
    }
}

static SIGV4_PASSWORD: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"\d{8}T\d{6}Z[0-9a-f]{64}").unwrap_or_else(|err| panic!("{err}"))
});

/// Fails naming the secret and where it showed up if any of `secrets`, or a SigV4 git password, is
/// in any of `texts` (labelled, e.g. `("stderr", …)`).
pub fn assert_no_secret_in(texts: &[(&str, &str)], secrets: &[Secret]) {
    for (label, text) in texts {
        for secret in secrets {
            for form in &secret.forms {
                assert!(
                    !text.contains(form.as_str()),
                    "the secret {} leaked into {label}:\n{text}",
                    secret.name
                );
            }
        }
        assert!(
            !SIGV4_PASSWORD.is_match(text),
            "a SigV4 git password leaked into {label}:\n{text}"
        );
    }
}
