//! Invocation payloads: an EventBridge scheduled event (a full run with the function's settings) or a
//! manual payload `{"repos": [...], "dry_run": true}` (`{}` is a full run). Anything else is refused
//! with an error that names what was wrong, before anything is changed.

use serde_json::Value;

/// What one invocation asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// Only these source repositories; empty means all selected ones.
    pub repos: Vec<String>,
    /// Overrides `MIRROR_DRY_RUN` when given.
    pub dry_run: Option<bool>,
    /// The payload was EventBridge's scheduled event.
    pub scheduled: bool,
}

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the payload must be a JSON object (a scheduled event, or {{\"repos\": [...], \"dry_run\": true}}), not {0}")]
    NotAnObject(&'static str),
    #[error("unknown key {0:?} in the payload: only \"repos\" and \"dry_run\" are accepted")]
    UnknownKey(String),
    #[error("\"repos\" must be an array of repository names, not {0}")]
    ReposNotArray(&'static str),
    #[error("\"repos\"[{index}] must be a non-empty repository name string, not {found}")]
    RepoNotName { index: usize, found: String },
    #[error("\"dry_run\" must be true or false, not {0}")]
    DryRunNotBool(&'static str),
    #[error("an EventBridge event of detail-type {0:?} is not a scheduled event")]
    NotScheduled(String),
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a payload.
pub fn parse(payload: &Value) -> Result<Invocation, PayloadError> {
    let object = payload
        .as_object()
        .ok_or(PayloadError::NotAnObject(kind(payload)))?;
    if let Some(detail_type) = object.get("detail-type") {
        // EventBridge: the schedule's own event. Its other keys are EventBridge's, not ours.
        return match detail_type.as_str() {
            Some("Scheduled Event") => Ok(Invocation {
                scheduled: true,
                ..Invocation::default()
            }),
            _ => Err(PayloadError::NotScheduled(detail_type.to_string())),
        };
    }
    let mut invocation = Invocation::default();
    for (key, value) in object {
        match key.as_str() {
            "repos" => {
                let names = value
                    .as_array()
                    .ok_or(PayloadError::ReposNotArray(kind(value)))?;
                for (index, name) in names.iter().enumerate() {
                    match name.as_str().map(str::trim) {
                        Some(name) if !name.is_empty() => invocation.repos.push(name.to_owned()),
                        _ => {
                            return Err(PayloadError::RepoNotName {
                                index,
                                found: name.to_string(),
                            })
                        }
                    }
                }
            }
            "dry_run" => {
                invocation.dry_run = Some(
                    value
                        .as_bool()
                        .ok_or(PayloadError::DryRunNotBool(kind(value)))?,
                )
            }
            other => return Err(PayloadError::UnknownKey(other.to_owned())),
        }
    }
    Ok(invocation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepted_payloads() {
        assert_eq!(parse(&json!({})).unwrap(), Invocation::default());
        let manual = parse(&json!({"repos": ["whitehall", "calendars"], "dry_run": true})).unwrap();
        assert_eq!(manual.repos, vec!["whitehall", "calendars"]);
        assert_eq!(manual.dry_run, Some(true));
        let scheduled = parse(&json!({
            "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-21T10:00:00Z", "region": "eu-west-2",
            "resources": ["arn:aws:events:eu-west-2:123456789012:rule/r"], "detail": {}
        }))
        .unwrap();
        assert!(scheduled.scheduled && scheduled.repos.is_empty() && scheduled.dry_run.is_none());
    }

    #[test]
    fn refused_payloads_name_the_problem() {
        let cases = [
            (json!([]), "must be a JSON object"),
            (json!("run"), "not a string"),
            (json!({"repo": ["x"]}), "unknown key \"repo\""),
            (json!({"repos": "whitehall"}), "\"repos\" must be an array"),
            (json!({"repos": ["ok", 3]}), "\"repos\"[1]"),
            (json!({"repos": [""]}), "\"repos\"[0]"),
            (
                json!({"dry_run": "yes"}),
                "\"dry_run\" must be true or false, not a string",
            ),
            (
                json!({"detail-type": "AWS API Call via CloudTrail"}),
                "not a scheduled event",
            ),
        ];
        for (payload, expected) in cases {
            let err = parse(&payload).unwrap_err().to_string();
            assert!(err.contains(expected), "{payload}: {err}");
        }
    }
}
