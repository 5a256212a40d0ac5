//! The network's conditions and phase, as pure functions of what the reconcile observed
//! and decided: the validator set, fault tolerance, block production, each role's
//! readiness with what it waits for, and Ready, Degraded and the phase that sum them up.
//! The rollout's two conditions are decided with the rollout (`decide`).

use std::time::Duration;

use besu_operator_api::{
    BesuNetworkStatus, NetworkPhase, NodeType, RoleStatus, ValidatorChange, ValidatorSetStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;

use super::apply::Applied;
use super::decide::{Gates, Plan, rollout_conditions, upgrade_status};
use super::keys::key_problems;
use super::observe::Observed;
use crate::chain::quorum::{commit_quorum, fault_tolerance};
use crate::controller::day2::ScalingStep;
use crate::controller::status::{DesiredCondition, merge_conditions, transitions};
use crate::render::network::{genesis_config_map_name, node_name};

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

/// A node a backup run stopped is why the network is not Ready: `Ready` says so (reason
/// `BackupInProgress`) rather than that nodes are being brought up.
pub fn during_backup(
    readiness: &mut [DesiredCondition],
    run: Option<&besu_operator_api::BackupAttempt>,
) {
    let Some(run) = run else {
        return;
    };
    for c in readiness.iter_mut() {
        if c.type_ == "Ready" && !c.status && c.reason == "Creating" {
            c.reason = "BackupInProgress".to_string();
            c.message = format!(
                "{} is stopped for snapshot {} ({}); the chain runs on without it",
                run.node, run.snapshot, run.phase
            );
        }
    }
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
        if c.type_ == "Degraded" || c.type_ == "BackupFailing" {
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

/// The network's status after `plan` was applied (`applied`), from what the reconcile
/// observed; `problems` are what only a person can fix, in the order found. Conditions
/// are merged with the previous status's (a transition keeps its time otherwise).
pub fn network_status(
    o: &Observed,
    plan: &Plan,
    applied: &Applied,
    problems: &[(&'static str, String)],
    now: Timestamp,
) -> BesuNetworkStatus {
    let network = &o.network;
    let name = o.name();
    let genesis_name = genesis_config_map_name(&name);
    let key_problems = key_problems(&o.keys);
    let mut conditions = vec![
        if key_problems.is_empty() {
            DesiredCondition::new(
                "KeysReady",
                true,
                "KeysPresent",
                format!("{} node keys present", o.keys.len()),
            )
        } else {
            DesiredCondition::new("KeysReady", false, "KeyMissing", key_problems.join("; "))
        },
        match &o.genesis_checksum {
            Some(c) => DesiredCondition::new(
                "GenesisReady",
                true,
                "GenesisWritten",
                format!("genesis ConfigMap {genesis_name}, checksum {c}"),
            ),
            None => DesiredCondition::new(
                "GenesisReady",
                false,
                "WaitingForKeys",
                "genesis is written once every validator key exists",
            ),
        },
        validator_set(
            plan.scaling.as_ref(),
            o.chain.error.as_deref(),
            network.spec.validators,
            &name,
        ),
        fault_tolerant(network.spec.validators),
        producing(o.advancing, o.stall_window()),
    ];
    conditions.extend(rollout_conditions(
        &plan.rollout,
        &network.spec.image,
        o.block_period(),
        now,
    ));
    let upgrade = upgrade_status(
        &plan.rollout,
        &plan.rollout_nodes,
        network.status.as_ref().and_then(|s| s.upgrade.as_ref()),
        &network.spec.image,
    );
    let role = |t| (o.ready(t), o.wanted(t));
    let roles = Roles {
        bootnodes: role(NodeType::Bootnode),
        validators: role(NodeType::Validator),
        members: role(NodeType::Member),
    };
    let (mut readiness, phase) =
        readiness(&roles, &o.gates(), o.genesis_checksum.is_some(), problems);
    during_backup(
        &mut readiness,
        plan.backup
            .status
            .as_ref()
            .and_then(|b| b.in_progress.as_ref()),
    );
    conditions.extend(readiness);
    conditions.extend(plan.backup.condition.clone());
    let previous = network
        .status
        .as_ref()
        .map_or(&[][..], |s| &s.conditions[..]);
    let conditions = merge_conditions(previous, &conditions, network.metadata.generation, now);
    let to_i32 = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let mut addresses: Vec<String> = o
        .validator_addresses()
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    addresses.sort();
    let (v_ready, v_want) = roles.validators;
    let role_status = |(ready, desired): (usize, usize)| RoleStatus {
        desired: to_i32(desired),
        ready: to_i32(ready),
    };
    BesuNetworkStatus {
        phase,
        observed_generation: network.metadata.generation,
        conditions,
        bootnodes: role_status(roles.bootnodes),
        validators: ValidatorSetStatus {
            desired: to_i32(v_want),
            ready: to_i32(v_ready),
            summary: format!("{v_ready}/{v_want}"),
            addresses,
            on_chain: o
                .chain
                .onchain
                .as_ref()
                .map(|set| set.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            pending: plan
                .votes
                .iter()
                .map(|v| ValidatorChange {
                    address: v.address.to_string(),
                    ordinal: v.ordinal,
                    action: if v.add { "add" } else { "remove" }.to_string(),
                    votes: to_i32(applied.holding),
                    needed: to_i32(v.needed),
                })
                .collect(),
        },
        members: role_status(roles.members),
        bootnode_enodes: o.bootnode_enodes(),
        genesis_checksum: o.genesis_checksum.clone(),
        genesis_config_map: Some(genesis_name),
        upgrade,
        backup: plan.backup.status.clone(),
        restored_from: o.restore.clone().or_else(|| {
            network
                .status
                .as_ref()
                .and_then(|s| s.restored_from.clone())
        }),
    }
}

#[cfg(test)]
mod tests;
