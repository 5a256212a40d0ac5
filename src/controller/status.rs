//! Conditions that move `lastTransitionTime` only on a real transition, and status
//! writes that happen only when something changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;
use crate::render::FIELD_MANAGER;

/// A condition as decided by a reconcile, before timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCondition {
    /// Condition type, e.g. `Ready`.
    pub type_: &'static str,
    /// True or False.
    pub status: bool,
    /// PascalCase reason.
    pub reason: String,
    /// What the user should know or do.
    pub message: String,
}

impl DesiredCondition {
    /// A condition of the given type and status.
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        DesiredCondition {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

fn status_str(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// Merges desired conditions into the previous ones. A condition keeps its
/// `lastTransitionTime` unless its status flips; reason and message may change freely.
pub fn merge_conditions(
    previous: &[Condition],
    desired: &[DesiredCondition],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let prev = previous.iter().find(|c| c.type_ == d.type_);
            let last_transition_time = match prev {
                Some(p) if p.status == status_str(d.status) => p.last_transition_time.clone(),
                _ => Time(now),
            };
            Condition {
                type_: d.type_.to_string(),
                status: status_str(d.status).to_string(),
                reason: d.reason.clone(),
                message: d.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// The conditions whose status differs between two lists (types newly present count).
pub fn transitions<'a>(previous: &[Condition], next: &'a [Condition]) -> Vec<&'a Condition> {
    next.iter()
        .filter(|n| {
            previous
                .iter()
                .find(|p| p.type_ == n.type_)
                .is_none_or(|p| p.status != n.status)
        })
        .collect()
}

/// Writes `status` by server-side apply on the status subresource, unless it equals the
/// live one. Returns whether a write was made.
pub async fn write_status_if_changed<K, S>(
    api: &Api<K>,
    obj: &K,
    live: Option<&S>,
    status: &S,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if live == Some(status) {
        return Ok(false);
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let first = merge_conditions(
            &[],
            &[DesiredCondition::new("Ready", false, "Creating", "a")],
            Some(1),
            ts(100),
        );
        assert_eq!(first[0].last_transition_time, Time(ts(100)));
        let same = merge_conditions(
            &first,
            &[DesiredCondition::new("Ready", false, "Creating", "b")],
            Some(1),
            ts(200),
        );
        assert_eq!(same[0].last_transition_time, Time(ts(100)));
        assert_eq!(same[0].message, "b");
        assert!(transitions(&first, &same).is_empty());
        let flipped = merge_conditions(
            &same,
            &[DesiredCondition::new("Ready", true, "Ready", "c")],
            Some(1),
            ts(300),
        );
        assert_eq!(flipped[0].last_transition_time, Time(ts(300)));
        assert_eq!(transitions(&same, &flipped).len(), 1);
    }
}
