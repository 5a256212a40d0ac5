//! CRD types of besu-operator: groups `besu.nodeops.dev` (BesuNetwork, BesuNode) and
//! `ethereum.nodeops.dev` (EthereumNode), version `v1alpha1`.
//!
//! Doc comments on fields become `kubectl explain` text; CEL rules (`x_kube(validation)`)
//! reject bad input at admission with messages that say what to do.

pub mod besu;
pub mod common;
pub mod ethereum;
pub mod network;
pub mod node;

pub use besu::*;
pub use common::*;
pub use ethereum::*;
pub use network::*;
pub use node::*;

use kube::CustomResourceExt;

/// Every CRD of this crate, in install order.
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    vec![BesuNetwork::crd(), BesuNode::crd(), EthereumNode::crd()]
}
