//! The network's conditions and phase, as pure functions of what the reconcile observed
//! and decided: the validator set, fault tolerance, block production, each role's
//! readiness with what it waits for, and Ready, Degraded and the phase that sum them up.
//! The rollout's two conditions are decided with the rollout (`decide`).

use std::time::Duration;

use besu_operator_api::{NetworkPhase, NodeType};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::EventType;

use super::decide::Gates;
use crate::chain::quorum::{commit_quorum, fault_tolerance};
use crate::controller::day2::ScalingStep;
use crate::controller::status::{DesiredCondition, transitions};
use crate::render::network::node_name;

/// `ValidatorSetConverged`: whether the on-chain validator set is the desired one, from
/// the scaling step decided (None: the chain could not be read, for `chain_error`).
pub fn validator_set(
    scaling: Option<&ScalingStep>,
    chain_error: Option<&str>,
    validators: i32,
    network: &str,
) -> DesiredCondition {
    match (scaling, chain_error) {
        (Some(ScalingStep::Converged), _) => DesiredCondition::new(
            "ValidatorSetConverged",
            true,
            "Converged",
            format!("the on-chain validator set is the {validators} desired validators"),
        ),
        (Some(step @ ScalingStep::Foreign(_)), _) => DesiredCondition::new(
            "ValidatorSetConverged",
            false,
            "UnknownValidator",
            describe_step(step, network),
        ),
        (Some(step), _) => DesiredCondition::new(
            "ValidatorSetConverged",
            false,
            "Changing",
            describe_step(step, network),
        ),
        (None, Some(e)) => DesiredCondition::new(
            "ValidatorSetConverged",
            false,
            "ChainUnreachable",
            format!("cannot read the validator set from the validators' JSON-RPC: {e}"),
        ),
        (None, None) => DesiredCondition::new(
            "ValidatorSetConverged",
            false,
            "ChainUnreachable",
            "no validator is Ready to report the validator set yet",
        ),
    }
}

/// `FaultTolerant`: whether the validators survive one stopped validator.
pub fn fault_tolerant(validators: i32) -> DesiredCondition {
    if validators < 4 {
        DesiredCondition::new(
            "FaultTolerant",
            false,
            "TooFewValidators",
            format!(
                "{validators} validator(s) tolerate no stopped validator; use at least 4 to survive one failure"
            ),
        )
    } else {
        DesiredCondition::new(
            "FaultTolerant",
            true,
            "Tolerates",
            format!(
                "{validators} validators keep producing blocks with up to {} stopped",
                fault_tolerance(usize::try_from(validators).unwrap_or(0))
            ),
        )
    }
}

/// `Producing`: whether the head advanced within `stall_window` (None: no node reports a
/// height).
pub fn producing(advancing: Option<bool>, stall_window: Duration) -> DesiredCondition {
    match advancing {
        Some(true) => DesiredCondition::new(
            "Producing",
            true,
            "HeadAdvancing",
            "the chain head advanced within the last few block periods",
        ),
        Some(false) => DesiredCondition::new(
            "Producing",
            false,
            "HeadStalled",
            format!(
                "the chain head has not advanced for {} s; more than a third of the validators may be down",
                stall_window.as_secs()
            ),
        ),
        None => DesiredCondition::new(
            "Producing",
            false,
            "Unknown",
            "no node reports the chain height yet",
        ),
    }
}

/// Ready and wanted nodes of each Besu role.
#[derive(Clone, Copy, Debug, Default)]
pub struct Roles {
    /// (Ready, wanted) bootnodes.
    pub bootnodes: (usize, usize),
    /// (Ready, wanted) validators.
    pub validators: (usize, usize),
    /// (Ready, wanted) members.
    pub members: (usize, usize),
}

/// Each role's readiness condition, `Ready`, `Degraded` and the phase: Degraded with any
/// problem, Ready with every node Ready on a written genesis, Creating once genesis is
/// written, Pending before.
pub fn readiness(
    roles: &Roles,
    gates: &Gates,
    genesis_written: bool,
    problems: &[(&'static str, String)],
) -> (Vec<DesiredCondition>, NetworkPhase) {
    let role = |t, (ready, want): (usize, usize), waiting: &str| {
        let ok = ready == want;
        DesiredCondition::new(
            t,
            ok,
            if ok { "AllReady" } else { "NotAllReady" },
            if ok {
                format!("{ready}/{want} ready")
            } else {
                format!("{ready}/{want} ready; {waiting}")
            },
        )
    };
    let v_want = roles.validators.1;
    let mut out = vec![
        role(
            "BootnodesReady",
            roles.bootnodes,
            "waiting for bootnode pods",
        ),
        role(
            "ValidatorsReady",
            roles.validators,
            &if gates.open(NodeType::Validator) {
                format!(
                    "waiting for validator pods (members start at {} ready)",
                    commit_quorum(v_want)
                )
            } else {
                "validators start once every bootnode is Ready".to_string()
            },
        ),
        role(
            "MembersReady",
            roles.members,
            &if gates.open(NodeType::Member) {
                "waiting for member pods".to_string()
            } else {
                format!(
                    "members start once {} validators are Ready",
                    commit_quorum(v_want)
                )
            },
        ),
    ];
    let all = |(ready, want): (usize, usize)| ready == want;
    let all_ready =
        genesis_written && all(roles.bootnodes) && all(roles.validators) && all(roles.members);
    let ready = all_ready && problems.is_empty();
    out.push(if ready {
        DesiredCondition::new("Ready", true, "AllNodesReady", "every node is Ready")
    } else if !problems.is_empty() {
        DesiredCondition::new("Ready", false, "Degraded", "see the Degraded condition")
    } else {
        DesiredCondition::new(
            "Ready",
            false,
            "Creating",
            "bringing nodes up in order: bootnodes, validators, members",
        )
    });
    out.push(match problems.first() {
        Some((reason, _)) => DesiredCondition::new(
            "Degraded",
            true,
            *reason,
            problems
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        None => DesiredCondition::new("Degraded", false, "AsExpected", "no problem found"),
    });
    let phase = if !problems.is_empty() {
        NetworkPhase::Degraded
    } else if ready {
        NetworkPhase::Ready
    } else if genesis_written {
        NetworkPhase::Creating
    } else {
        NetworkPhase::Pending
    };
    (out, phase)
}

/// The Events a status change announces, as (type, reason, note): a Warning when an
/// out-of-band validator is first reported (whatever the condition said before), a
/// Warning when Degraded turns True (its reason), and a Normal Event named after any
/// other condition that turns True.
pub fn events(previous: &[Condition], merged: &[Condition]) -> Vec<(EventType, String, String)> {
    let mut out = Vec::new();
    let reason_of = |list: &[Condition]| {
        list.iter()
            .find(|c| c.type_ == "ValidatorSetConverged")
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    if let Some((reason, message)) = reason_of(merged)
        && reason == "UnknownValidator"
        && reason_of(previous).map(|r| r.1) != Some(message.clone())
    {
        out.push((EventType::Warning, "UnknownValidator".to_string(), message));
    }
    for c in transitions(previous, merged) {
        if c.status != "True" {
            continue;
        }
        if c.type_ == "Degraded" {
            out.push((EventType::Warning, c.reason.clone(), c.message.clone()));
        } else {
            out.push((EventType::Normal, c.type_.clone(), c.message.clone()));
        }
    }
    out
}

/// A sentence for the ValidatorSetConverged condition.
pub fn describe_step(step: &ScalingStep, network: &str) -> String {
    let node = |o: &i32| node_name(network, NodeType::Validator, *o);
    match step {
        ScalingStep::Converged => "converged".to_string(),
        ScalingStep::CreateNode { ordinal } => {
            format!("starting {} as a non-validating node", node(ordinal))
        }
        ScalingStep::WaitForSync { reason, .. } => reason.clone(),
        ScalingStep::Vote {
            ordinal,
            address,
            add,
            voters,
        } => format!(
            "{} validators are voting to {} {} ({address}): {}",
            voters.len(),
            if *add { "add" } else { "remove" },
            node(ordinal),
            voters.iter().map(node).collect::<Vec<_>>().join(", ")
        ),
        ScalingStep::RemoveNode { ordinal } => {
            format!(
                "{} left the validator set; deleting its node",
                node(ordinal)
            )
        }
        ScalingStep::Blocked(why) => format!("validator change blocked: {why}"),
        ScalingStep::Foreign(addresses) => format!(
            "the desired validators are on-chain, and so {} {}, which {} none of this network's validators: voted in outside the operator (any client of a validator's QBFT/IBFT JSON-RPC can propose votes). The operator does not vote {} out on its own; if it should not validate, have a majority of validators call qbft_proposeValidatorVote(address, false) (ibft_proposeValidatorVote for IBFT 2.0)",
            if addresses.len() == 1 { "is" } else { "are" },
            addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if addresses.len() == 1 { "is" } else { "are" },
            if addresses.len() == 1 { "it" } else { "them" },
        ),
    }
}

#[cfg(test)]
mod tests;
