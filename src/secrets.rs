//! The Secrets Manager secret with the GitHub credentials (a token, or a GitHub App) and the optional
//! target credentials. Read at the start of every run, so a rotated token takes effect without a
//! redeploy. No error ever contains a secret value.

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use serde_json::{Map, Value};

use crate::git::Credentials;
use crate::source::GitHubAuth;

/// What the secret holds.
#[derive(Debug, Clone)]
pub struct SecretContents {
    pub github: GitHubAuth,
    pub target_credentials: Option<Credentials>,
    /// Reserved for webhook-triggered runs; read and kept, never logged (`Debug` redacts it).
    pub webhook_secret: Option<secrecy::SecretString>,
}

/// Why the secret could not be used. Names the secret, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("MIRROR_SECRET_ID: secret {secret_id:?} was not found")]
    NotFound { secret_id: String },
    #[error("MIRROR_SECRET_ID: access to secret {secret_id:?} was denied: {message}")]
    AccessDenied { secret_id: String, message: String },
    #[error("MIRROR_SECRET_ID: secret {secret_id:?} could not be read: {message}")]
    Unreadable { secret_id: String, message: String },
    #[error("MIRROR_SECRET_ID: secret {secret_id:?} {problem}")]
    Invalid { secret_id: String, problem: String },
}

/// Reads and parses the secret.
pub async fn read(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<SecretContents, SecretError> {
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|err| {
            let message = err.message().map(str::to_owned).unwrap_or_else(|| {
                aws_sdk_secretsmanager::error::DisplayErrorContext(&err)
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            });
            match err.code() {
                Some("ResourceNotFoundException") => SecretError::NotFound {
                    secret_id: secret_id.to_owned(),
                },
                Some("AccessDeniedException") => SecretError::AccessDenied {
                    secret_id: secret_id.to_owned(),
                    message,
                },
                _ => SecretError::Unreadable {
                    secret_id: secret_id.to_owned(),
                    message,
                },
            }
        })?;
    let text = output.secret_string().ok_or_else(|| SecretError::Invalid {
        secret_id: secret_id.to_owned(),
        problem: "has no SecretString (a binary secret is not supported)".into(),
    })?;
    parse(secret_id, text)
}

/// Parses a SecretString: a JSON object with `github_token` or the three `github_app_*` keys (plus the
/// optional `target_username`, `target_password`, `webhook_secret`), or a bare token.
pub fn parse(secret_id: &str, text: &str) -> Result<SecretContents, SecretError> {
    let invalid = |problem: String| SecretError::Invalid {
        secret_id: secret_id.to_owned(),
        problem,
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(invalid("is empty".into()));
    }
    let object: Map<String, Value> = match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(object)) => object,
        Ok(_) => {
            return Err(invalid(
                "is JSON but not an object with github_token or github_app_* keys".into(),
            ))
        }
        Err(_) if trimmed.starts_with('{') => {
            return Err(invalid("looks like JSON but does not parse".into()))
        }
        Err(_) => {
            if trimmed.chars().any(char::is_whitespace) {
                return Err(invalid(
                    "is neither JSON nor a bare token (it contains white space)".into(),
                ));
            }
            return Ok(SecretContents {
                github: GitHubAuth::Token(trimmed.to_owned()),
                target_credentials: None,
                webhook_secret: None,
            });
        }
    };
    let text_field = |key: &str| -> Result<Option<String>, SecretError> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(Value::Number(n)) if key.ends_with("_id") => Ok(Some(n.to_string())),
            Some(_) => Err(invalid(format!("has a {key} that is not a string"))),
        }
    };
    let id_field = |key: &str, value: Option<String>| -> Result<Option<u64>, SecretError> {
        value
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| invalid(format!("has a {key} that is not a number")))
            })
            .transpose()
    };
    let token = text_field("github_token")?;
    let app_id = id_field("github_app_id", text_field("github_app_id")?)?;
    let installation_id = id_field(
        "github_app_installation_id",
        text_field("github_app_installation_id")?,
    )?;
    let private_key = text_field("github_app_private_key")?;
    let github = match (token, app_id, installation_id, private_key) {
        (Some(token), None, None, None) => GitHubAuth::Token(token),
        (None, Some(app_id), Some(installation_id), Some(private_key)) => GitHubAuth::App { app_id, installation_id, private_key },
        (Some(_), ..) => return Err(invalid("has both github_token and github_app_* keys: keep one".into())),
        (None, None, None, None) => return Err(invalid("has neither github_token nor github_app_id, github_app_installation_id and github_app_private_key".into())),
        (None, app_id, installation_id, private_key) => {
            let missing: Vec<&str> = [
                (app_id.is_none(), "github_app_id"),
                (installation_id.is_none(), "github_app_installation_id"),
                (private_key.is_none(), "github_app_private_key"),
            ]
            .iter()
            .filter(|(missing, _)| *missing)
            .map(|(_, key)| *key)
            .collect();
            return Err(invalid(format!("lacks {} for a GitHub App", missing.join(", "))));
        }
    };
    let target_credentials = match (
        text_field("target_username")?,
        text_field("target_password")?,
    ) {
        (Some(username), Some(password)) => Some(Credentials { username, password }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                "has target_username without target_password".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "has target_password without target_username".into(),
            ))
        }
    };
    Ok(SecretContents {
        github,
        target_credentials,
        webhook_secret: text_field("webhook_secret")?.map(secrecy::SecretString::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = "ghp_supersecretvalue123";

    #[test]
    fn tokens_apps_and_bare_strings() {
        let token = parse(
            "s",
            &format!(
                r#"{{"github_token": "{VALUE}", "target_username": "u", "target_password": "p"}}"#
            ),
        )
        .unwrap();
        assert!(matches!(token.github, GitHubAuth::Token(ref t) if t == VALUE));
        assert_eq!(token.target_credentials.unwrap().username, "u");
        let bare = parse("s", &format!("  {VALUE}\n")).unwrap();
        assert!(matches!(bare.github, GitHubAuth::Token(ref t) if t == VALUE));
        let app = parse("s", r#"{"github_app_id": "12", "github_app_installation_id": 34, "github_app_private_key": "-----BEGIN RSA PRIVATE KEY-----\nx"}"#).unwrap();
        assert!(matches!(
            app.github,
            GitHubAuth::App {
                app_id: 12,
                installation_id: 34,
                ..
            }
        ));
    }

    #[test]
    fn problems_are_named_without_values() {
        let cases = [
            ("", "is empty"),
            ("[1,2]", "not an object"),
            ("{\"github_token\": ", "does not parse"),
            ("two words", "neither JSON nor a bare token"),
            ("{}", "has neither github_token"),
            (
                r#"{"github_app_id": "1", "github_app_private_key": "k"}"#,
                "lacks github_app_installation_id",
            ),
            (
                r#"{"github_app_id": "one", "github_app_installation_id": "2", "github_app_private_key": "k"}"#,
                "github_app_id that is not a number",
            ),
            (
                r#"{"github_token": "ghp_supersecretvalue123", "github_app_id": "1"}"#,
                "both github_token and github_app_*",
            ),
            (
                r#"{"github_token": "ghp_supersecretvalue123", "target_username": "u"}"#,
                "target_username without target_password",
            ),
            (
                r#"{"github_token": 5}"#,
                "github_token that is not a string",
            ),
        ];
        for (text, expected) in cases {
            let err = parse("prod/mirror", text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(err.contains("\"prod/mirror\""), "{err}");
            assert!(!err.contains(VALUE), "{err}");
        }
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let contents = parse(
            "s",
            &format!(
                r#"{{"github_token": "{VALUE}", "target_username": "user-{VALUE}", "target_password": "pw-{VALUE}", "webhook_secret": "hook-{VALUE}"}}"#
            ),
        )
        .unwrap();
        let shown = format!("{contents:?} {contents:#?}");
        assert!(!shown.contains(VALUE), "{shown}");
        let app = parse("s", r#"{"github_app_id": "12", "github_app_installation_id": 34, "github_app_private_key": "-----BEGIN RSA PRIVATE KEY-----\nsecretkeymaterial"}"#).unwrap();
        let shown = format!("{app:?}");
        assert!(!shown.contains("secretkeymaterial"), "{shown}");
    }
}
