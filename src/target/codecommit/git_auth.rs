//! CodeCommit's git-over-HTTPS credentials, derived from AWS credentials: no static git password ever
//! exists. The username is the access key id (plus `%` and the session token when there is one); the
//! password is the time stamp, `Z`, and a SigV4 signature of the request `GIT <path>` for the host,
//! for service `codecommit` — as git-remote-codecommit computes them.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::git::Credentials;

/// The AWS credentials to sign with. `Debug` never shows the secret or the token.
#[derive(Clone)]
pub struct AwsKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKeys")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Git credentials for the repository at `host` + `path` (e.g. `/v1/repos/NAME`), valid around `now`.
pub fn git_credentials(
    keys: &AwsKeys,
    region: &str,
    host: &str,
    path: &str,
    now: time::OffsetDateTime,
) -> Credentials {
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let date = &stamp[..8];
    let canonical_request = format!("GIT\n{path}\n\nhost:{host}\n\nhost\n");
    let scope = format!("{date}/{region}/codecommit/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", keys.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [region, "codecommit", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    let username = match &keys.session_token {
        Some(token) => format!("{}%{token}", keys.access_key_id),
        None => keys.access_key_id.clone(),
    };
    Credentials {
        username,
        password: format!("{stamp}Z{signature}"),
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn at(text: &str) -> time::OffsetDateTime {
        time::PrimitiveDateTime::parse(
            text,
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        )
        .unwrap()
        .assume_utc()
    }

    #[test]
    fn reproduces_the_reference_vectors() {
        let keys = AwsKeys {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: SECRET.into(),
            session_token: None,
        };
        let c = git_credentials(
            &keys,
            "us-east-1",
            "git-codecommit.us-east-1.amazonaws.com",
            "/v1/repos/my-repo",
            at("2024-01-02T03:04:05"),
        );
        assert_eq!(c.username, "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(
            c.password,
            "20240102T030405Z9b2df9927db1175928ac1b36007e035fc326ba00f6b14ca1893cd3b269cdc38b"
        );

        let session = AwsKeys {
            access_key_id: "ASIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: SECRET.into(),
            session_token: Some("IQoJb3JpZ2luX2VjEXAMPLE+/token==".into()),
        };
        let c = git_credentials(
            &session,
            "eu-west-1",
            "git-codecommit.eu-west-1.amazonaws.com",
            "/v1/repos/mirror-test",
            at("2025-06-30T23:59:59"),
        );
        assert_eq!(
            c.username,
            "ASIAIOSFODNN7EXAMPLE%IQoJb3JpZ2luX2VjEXAMPLE+/token=="
        );
        assert_eq!(
            c.password,
            "20250630T235959Z18f0e22bf97d09d4e2817375ac205903f0efef6491ea3ce894e7705ff1bcb5b3"
        );

        let c = git_credentials(
            &keys,
            "us-east-1",
            "127.0.0.1:8443",
            "/v1/repos/my-repo",
            at("2024-01-02T03:04:05"),
        );
        assert_eq!(
            c.password,
            "20240102T030405Z8a467184ccf4545de4a771ba7b1a05bc79cdaf5d04fbe38c9d232d08fabd32d8"
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let keys = AwsKeys {
            access_key_id: "AKIA".into(),
            secret_access_key: SECRET.into(),
            session_token: Some("tok".into()),
        };
        let shown = format!("{keys:?}");
        assert!(!shown.contains(SECRET) && !shown.contains("tok"), "{shown}");
    }
}
