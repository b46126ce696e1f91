//! The SPA's readers (without the `full` feature): the same JSON as the derived ones, with far
//! less wasm. serde buffers an internally tagged enum (`{"kind": ..., ...}`) into its generic
//! `Content` tree and parses it again; these read a flat struct and pick the variant instead.
//! The SPA reads what the API wrote, so they need not reproduce serde's error messages.

use serde::{Deserialize, Serialize};

use crate::builds::BuildResult;
use crate::deployments::RestartPolicy;

/// JSON kept as its text (audit details: the SPA shows them, never looks inside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawJson(pub String);

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw =
            serde_json::value::RawValue::from_string(self.0.clone()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        Ok(RawJson(raw.get().to_owned()))
    }
}

#[derive(Deserialize)]
pub struct BuildResultFields {
    kind: String,
    code: Option<i32>,
    signal: Option<i32>,
    message: Option<String>,
}

impl TryFrom<BuildResultFields> for BuildResult {
    type Error = &'static str;

    fn try_from(f: BuildResultFields) -> Result<Self, Self::Error> {
        const MISSING: &str = "a build result without its field";
        Ok(match f.kind.as_str() {
            "exited" => BuildResult::Exited { code: f.code.ok_or(MISSING)? },
            "signalled" => BuildResult::Signalled { signal: f.signal.ok_or(MISSING)? },
            "stopped" => BuildResult::Stopped { signal: f.signal.ok_or(MISSING)? },
            "message" => BuildResult::Message { message: f.message.ok_or(MISSING)? },
            _ => return Err("an unknown kind of build result"),
        })
    }
}

#[derive(Deserialize)]
pub struct RestartPolicyFields {
    kind: String,
    #[serde(default)]
    exit_codes: Option<Vec<i32>>,
}

impl TryFrom<RestartPolicyFields> for RestartPolicy {
    type Error = &'static str;

    fn try_from(f: RestartPolicyFields) -> Result<Self, Self::Error> {
        match f.kind.as_str() {
            "never" => Ok(RestartPolicy::Never),
            "on_failure" => Ok(RestartPolicy::OnFailure { exit_codes: f.exit_codes }),
            _ => Err("an unknown restart policy"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the (derived) serializers write, these read back; and they refuse unknown kinds.
    #[test]
    fn read_what_the_api_writes() {
        for result in [
            BuildResult::Exited { code: 3 },
            BuildResult::Signalled { signal: 9 },
            BuildResult::Stopped { signal: 19 },
            BuildResult::Message { message: "timed out".into() },
        ] {
            let json = serde_json::to_string(&result).unwrap();
            assert_eq!(serde_json::from_str::<BuildResult>(&json).unwrap(), result, "{json}");
        }
        for policy in [
            RestartPolicy::Never,
            RestartPolicy::OnFailure { exit_codes: None },
            RestartPolicy::OnFailure { exit_codes: Some(vec![2, 3]) },
        ] {
            let json = serde_json::to_string(&policy).unwrap();
            assert_eq!(serde_json::from_str::<RestartPolicy>(&json).unwrap(), policy, "{json}");
        }
        assert_eq!(
            serde_json::from_str::<RestartPolicy>(r#"{"kind": "on_failure"}"#).unwrap(),
            RestartPolicy::OnFailure { exit_codes: None }
        );
        assert!(serde_json::from_str::<BuildResult>(r#"{"kind": "exploded"}"#).is_err());
        assert!(serde_json::from_str::<BuildResult>(r#"{"kind": "exited"}"#).is_err());
        assert!(serde_json::from_str::<RestartPolicy>(r#"{"kind": "always"}"#).is_err());
        let details = r#"{"name":"kvm-1","n":[1,2]}"#;
        let raw: RawJson = serde_json::from_str(details).unwrap();
        assert_eq!(raw.0, details);
        assert_eq!(serde_json::to_string(&raw).unwrap(), details);
    }
}
