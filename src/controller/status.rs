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

/// The conditions after a reconcile that failed in a way only a person can fix:
/// `Degraded` True and `Ready` False with `reason` and `message`, every other condition
/// as it was. Also returns whether this is news (Degraded was not already saying this),
/// i.e. whether to publish an Event.
pub fn blocked_conditions(
    previous: &[Condition],
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> (Vec<Condition>, bool) {
    let news = !previous
        .iter()
        .any(|c| c.type_ == "Degraded" && c.status == "True" && c.message == message);
    let changed = merge_conditions(
        previous,
        &[
            DesiredCondition::new("Ready", false, "Degraded", "see the Degraded condition"),
            DesiredCondition::new("Degraded", true, reason, message),
        ],
        generation,
        now,
    );
    let mut out: Vec<Condition> = previous
        .iter()
        .filter(|c| c.type_ != "Ready" && c.type_ != "Degraded")
        .cloned()
        .collect();
    out.extend(changed);
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    (out, news)
}

/// Writes `status` by server-side apply on the status subresource, unless it equals the
/// live one. Returns the object as written, if a write was made.
pub async fn write_status_if_changed<K, S>(
    api: &Api<K>,
    obj: &K,
    live: Option<&S>,
    status: &S,
) -> Result<Option<K>, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if live == Some(status) {
        return Ok(None);
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let written = api
        .patch_status(
            &obj.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(Some(written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_reconcile_says_degraded_once_and_keeps_the_other_conditions() {
        let before = merge_conditions(
            &[],
            &[
                DesiredCondition::new("Ready", true, "AllNodesReady", "every node is Ready"),
                DesiredCondition::new("Producing", true, "Advancing", "blocks are produced"),
                DesiredCondition::new("Degraded", false, "AsExpected", "no problem found"),
            ],
            Some(1),
            ts(10),
        );
        let (after, news) = blocked_conditions(&before, "Forbidden", "refused", Some(2), ts(20));
        assert!(news);
        let get = |l: &[Condition], t: &str| l.iter().find(|c| c.type_ == t).cloned().unwrap();
        assert_eq!(get(&after, "Degraded").status, "True");
        assert_eq!(get(&after, "Degraded").reason, "Forbidden");
        assert_eq!(get(&after, "Degraded").message, "refused");
        assert_eq!(get(&after, "Degraded").last_transition_time, Time(ts(20)));
        assert_eq!(get(&after, "Ready").status, "False");
        assert_eq!(get(&after, "Producing"), get(&before, "Producing"));
        assert_eq!(after.len(), 3);
        // The same failure again: no news, no transition.
        let (again, news) = blocked_conditions(&after, "Forbidden", "refused", Some(2), ts(30));
        assert!(!news);
        assert_eq!(again, after);
        // Another message is news.
        let (_, news) = blocked_conditions(&after, "Invalid", "rejected", Some(2), ts(40));
        assert!(news);
    }

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
