//! An independent checker of CodeCommit git-over-HTTPS passwords, for the test git server's
//! [`Auth::Custom`] hook, written from AWS's description of the scheme (not from the product).
//!
//! CodeCommit takes HTTP Basic credentials where
//! - the username is the access key id, or `ACCESS_KEY_ID%SESSION_TOKEN` with temporary
//!   credentials (the token raw, not encoded, in the Basic header);
//! - the password is `YYYYMMDDTHHMMSS` + `Z` + the hex SigV4 signature of the request
//!   `GIT /v1/repos/NAME` with the single signed header `host`, an empty query and an empty
//!   payload hash:
//!
//! ```text
//! canonical request = "GIT\n/v1/repos/NAME\n\nhost:HOST\n\nhost\n"
//! string to sign    = "AWS4-HMAC-SHA256\n" + YYYYMMDDTHHMMSS (no Z!) + "\n"
//!                     + YYYYMMDD + "/" + REGION + "/codecommit/aws4_request\n"
//!                     + hex(sha256(canonical request))
//! signing key       = HMAC chain "AWS4"+secret → date → region → "codecommit" → "aws4_request"
//! ```
//!
//! The signed path is always the repository's path `/v1/repos/NAME`, whatever the git request
//! (`/v1/repos/NAME/info/refs`, `/v1/repos/NAME/git-receive-pack`, ...). The host is the `Host`
//! header as sent (with the port, e.g. `127.0.0.1:43123`). A password is accepted while its
//! time stamp is within `max_skew` of the server's clock, either way.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::git_server::{Auth, RequestInfo};

/// What a CodeCommit-like git server accepts: credentials signed with this key pair (and
/// session token, if any) for this region.
#[derive(Clone, Debug)]
pub struct SigV4GitCheck {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// `Some`: the username must carry exactly this token after a `%`. `None`: it must carry none.
    pub session_token: Option<String>,
    pub region: String,
    /// How far the password's time stamp may be from now, into the past or the future.
    pub max_skew: Duration,
}

impl SigV4GitCheck {
    /// A check for the given long-term keys in `region`, with a 15-minute window.
    pub fn new(access_key_id: &str, secret_access_key: &str, region: &str) -> SigV4GitCheck {
        SigV4GitCheck {
            access_key_id: access_key_id.to_string(),
            secret_access_key: secret_access_key.to_string(),
            session_token: None,
            region: region.to_string(),
            max_skew: Duration::from_secs(15 * 60),
        }
    }

    /// The same with a session token (temporary credentials).
    pub fn with_session_token(mut self, token: &str) -> SigV4GitCheck {
        self.session_token = Some(token.to_string());
        self
    }

    /// Accepts a valid password for the repository `request_path` belongs to, now.
    pub fn accepts(&self, user: &str, password: &str, host: &str, request_path: &str) -> bool {
        self.accepts_at(user, password, host, request_path, SystemTime::now())
    }

    /// [`SigV4GitCheck::accepts`] with the server's clock at `now`.
    pub fn accepts_at(
        &self,
        user: &str,
        password: &str,
        host: &str,
        request_path: &str,
        now: SystemTime,
    ) -> bool {
        self.check_at(user, password, host, request_path, now)
            .is_ok()
    }

    /// Like [`SigV4GitCheck::accepts_at`], saying why a password is refused. The reason never
    /// contains the secret key or the session token.
    pub fn check_at(
        &self,
        user: &str,
        password: &str,
        host: &str,
        request_path: &str,
        now: SystemTime,
    ) -> Result<(), String> {
        let (key_id, token) = match user.split_once('%') {
            Some((k, t)) => (k, Some(t)),
            None => (user, None),
        };
        if key_id != self.access_key_id {
            return Err(format!("unknown access key id {key_id:?}"));
        }
        match (token, self.session_token.as_deref()) {
            (None, None) => {}
            (Some(given), Some(wanted)) if given == wanted => {}
            (None, Some(_)) => return Err("username lacks the session token".into()),
            (Some(_), None) => {
                return Err("username carries a session token the keys do not have".into())
            }
            (Some(_), Some(_)) => return Err("wrong session token".into()),
        }
        let repo_path = signed_repo_path(request_path)
            .ok_or_else(|| format!("request path {request_path:?} is not below /v1/repos/NAME"))?;
        // YYYYMMDDTHHMMSS Z <64 hex>
        if password.len() != 16 + 64 || !password.is_ascii() {
            return Err(format!(
                "password has {} characters, not 80",
                password.len()
            ));
        }
        let (stamp, rest) = password.split_at(15);
        let (zulu, signature) = rest.split_at(1);
        if zulu != "Z" {
            return Err("no Z after the password's time stamp".into());
        }
        let signed_at =
            parse_utc_stamp(stamp).ok_or_else(|| format!("bad time stamp {stamp:?}"))?;
        let skew = match now.duration_since(signed_at) {
            Ok(age) => age,
            Err(ahead) => ahead.duration(),
        };
        if skew > self.max_skew {
            return Err(format!(
                "time stamp {stamp} is {} s away from now",
                skew.as_secs()
            ));
        }
        if !signature
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err("signature is not lower-case hex".into());
        }
        let expected = signature_hex(
            &self.secret_access_key,
            &self.region,
            host,
            &repo_path,
            stamp,
        );
        // Compare without an early exit.
        let differs = expected
            .bytes()
            .zip(signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differs != 0 {
            return Err(format!(
                "signature mismatch for host {host:?}, path {repo_path:?}, region {:?}",
                self.region
            ));
        }
        Ok(())
    }

    /// The git server's [`Auth::Custom`] running this check on the request's `Host` header and
    /// path. Refusals are reported on stderr with their reason (no secrets).
    pub fn into_auth(self) -> Auth {
        let check = Arc::new(self);
        Auth::Custom(Arc::new(
            move |user: &str, password: &str, request: &RequestInfo| match check.check_at(
                user,
                password,
                &request.host,
                &request.path,
                SystemTime::now(),
            ) {
                Ok(()) => true,
                Err(why) => {
                    eprintln!(
                        "sigv4 git check: refused {} {}: {why}",
                        request.method, request.path
                    );
                    false
                }
            },
        ))
    }
}

/// `/v1/repos/NAME` for a git request path `/v1/repos/NAME[/...]`; `None` for anything else.
pub fn signed_repo_path(request_path: &str) -> Option<String> {
    let rest = request_path.strip_prefix("/v1/repos/")?;
    let name = rest.split('/').next().unwrap_or_default();
    if name.is_empty() {
        return None;
    }
    Some(format!("/v1/repos/{name}"))
}

/// The Basic username for these credentials: `KEY` or `KEY%TOKEN`.
pub fn username_for(access_key_id: &str, session_token: Option<&str>) -> String {
    match session_token {
        Some(token) => format!("{access_key_id}%{token}"),
        None => access_key_id.to_string(),
    }
}

/// The git password for repository path `repo_path` (`/v1/repos/NAME`) on `host`, signed at `at`.
pub fn password_for(
    secret_access_key: &str,
    region: &str,
    host: &str,
    repo_path: &str,
    at: SystemTime,
) -> String {
    let stamp = utc_stamp(at);
    let signature = signature_hex(secret_access_key, region, host, repo_path, &stamp);
    format!("{stamp}Z{signature}")
}

/// Hex SigV4 signature for `stamp` (`YYYYMMDDTHHMMSS`, no `Z`).
pub fn signature_hex(
    secret_access_key: &str,
    region: &str,
    host: &str,
    repo_path: &str,
    stamp: &str,
) -> String {
    let canonical_request = format!("GIT\n{repo_path}\n\nhost:{host}\n\nhost\n");
    let date = &stamp[..8];
    let scope = format!("{date}/{region}/codecommit/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        to_hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac_sha256(
        format!("AWS4{secret_access_key}").as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, b"codecommit");
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    to_hex(&hmac_sha256(&k_signing, string_to_sign.as_bytes()))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const STAMP: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]");

/// `YYYYMMDDTHHMMSS` in UTC.
pub fn utc_stamp(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .format(STAMP)
        .expect("format a time")
}

/// Parses `YYYYMMDDTHHMMSS` (UTC). `None` unless it is exactly that, with a real date and time.
pub fn parse_utc_stamp(stamp: &str) -> Option<SystemTime> {
    if stamp.len() != 15 {
        return None;
    }
    let at = time::PrimitiveDateTime::parse(stamp, STAMP)
        .ok()?
        .assume_utc();
    Some(at.into())
}
