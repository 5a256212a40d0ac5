//! VolumeSnapshots (`snapshot.storage.k8s.io/v1`, the CSI external-snapshotter's API) of
//! a network's data volumes: listed, created and deleted as dynamic objects, since the
//! API is served only where its CRDs are installed. The operator never watches them: it
//! reads them while a snapshot is in progress, and when it seeds, restores or prunes.

use std::collections::BTreeMap;

use besu_operator_api::{LABEL_NETWORK, LABEL_NODE};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use super::Error;
use crate::render::network::GENESIS_CHECKSUM_ANNOTATION;
use crate::render::{MANAGED_BY, MANAGED_BY_LABEL};

/// The group and version the operator speaks.
pub const SNAPSHOT_API: &str = "snapshot.storage.k8s.io/v1";

/// The chain height of the node when its volume was copied (label and annotation). The
/// genesis checksum goes in [`GENESIS_CHECKSUM_ANNOTATION`] (64 hex digits exceed a label
/// value).
pub const HEIGHT_LABEL: &str = "besu.nodeops.dev/height";

/// What to tell a user whose cluster does not serve the API.
pub const NOT_SERVED: &str = "the cluster does not serve snapshot.storage.k8s.io/v1: install the VolumeSnapshot CRDs and the snapshot controller (github.com/kubernetes-csi/external-snapshotter), and a CSI driver that takes snapshots for the data volumes' StorageClass";

fn resource() -> ApiResource {
    ApiResource {
        group: "snapshot.storage.k8s.io".to_string(),
        version: "v1".to_string(),
        api_version: SNAPSHOT_API.to_string(),
        kind: "VolumeSnapshot".to_string(),
        plural: "volumesnapshots".to_string(),
    }
}

fn api(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &resource())
}

/// A VolumeSnapshot as the operator uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub name: String,
    /// `status.readyToUse`.
    pub ready: bool,
    /// `status.error.message`: the snapshot failed.
    pub error: Option<String>,
    /// The network and node labels (absent on a snapshot the operator did not take).
    pub network: Option<String>,
    pub node: Option<String>,
    pub height: Option<u64>,
    pub genesis_checksum: Option<String>,
    /// Whether the operator took it (the managed-by label): only those are pruned.
    pub managed: bool,
    /// `status.creationTime`, else the object's creation.
    pub created: Option<Timestamp>,
    /// The claim it copies (`spec.source.persistentVolumeClaimName`).
    pub claim: Option<String>,
}

impl Snapshot {
    /// What a VolumeSnapshot object says, as the operator reads it.
    pub fn from_object(o: &DynamicObject) -> Snapshot {
        let status = o.data.get("status");
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let created = text(status.and_then(|s| s.get("creationTime")))
            .and_then(|t| t.parse::<Timestamp>().ok())
            .or_else(|| o.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let labels = o.labels();
        Snapshot {
            name: o.name_any(),
            ready: status
                .and_then(|s| s.get("readyToUse"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            error: text(
                status
                    .and_then(|s| s.get("error"))
                    .and_then(|e| e.get("message")),
            ),
            network: labels.get(LABEL_NETWORK).cloned(),
            node: labels.get(LABEL_NODE).cloned(),
            height: o
                .annotations()
                .get(HEIGHT_LABEL)
                .or_else(|| labels.get(HEIGHT_LABEL))
                .and_then(|h| h.parse().ok()),
            genesis_checksum: o.annotations().get(GENESIS_CHECKSUM_ANNOTATION).cloned(),
            managed: labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY),
            created,
            claim: text(
                o.data
                    .get("spec")
                    .and_then(|s| s.get("source"))
                    .and_then(|s| s.get("persistentVolumeClaimName")),
            ),
        }
    }
}

/// The snapshots of a network, or the API not served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listed {
    /// `snapshot.storage.k8s.io/v1` is not served (its CRDs are not installed).
    NotServed,
    /// The network's snapshots (labelled with it), oldest first.
    Snapshots(Vec<Snapshot>),
}

impl Listed {
    pub fn snapshots(&self) -> &[Snapshot] {
        match self {
            Listed::NotServed => &[],
            Listed::Snapshots(s) => s,
        }
    }
}

fn not_served(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The snapshot objects in `ns` matching the label `selector` (None: the API is not
/// served).
pub async fn list_selected(
    client: &Client,
    ns: &str,
    selector: &str,
) -> Result<Option<Vec<DynamicObject>>, Error> {
    match api(client, ns)
        .list(&ListParams::default().labels(selector))
        .await
    {
        Ok(list) => Ok(Some(list.items)),
        Err(e) if not_served(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The snapshots labelled with `network` in `ns`, oldest first.
pub async fn list(client: &Client, ns: &str, network: &str) -> Result<Listed, Error> {
    let Some(items) = list_selected(client, ns, &format!("{LABEL_NETWORK}={network}")).await?
    else {
        return Ok(Listed::NotServed);
    };
    let mut out: Vec<Snapshot> = items.iter().map(Snapshot::from_object).collect();
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    Ok(Listed::Snapshots(out))
}

/// One snapshot by name: absent, or the API not served (`Listed::NotServed`).
pub async fn get(client: &Client, ns: &str, name: &str) -> Result<Listed, Error> {
    match api(client, ns).get_opt(name).await {
        Ok(o) => Ok(Listed::Snapshots(
            o.as_ref().map(Snapshot::from_object).into_iter().collect(),
        )),
        Err(e) if not_served(&e) => Ok(Listed::NotServed),
        Err(e) => Err(e.into()),
    }
}

/// What a new snapshot copies and records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSnapshot {
    pub name: String,
    pub network: String,
    pub node: String,
    pub claim: String,
    pub class: String,
    pub height: u64,
    pub genesis_checksum: String,
}

/// The VolumeSnapshot object for `s`. No owner: a backup outlives its network.
pub fn desired(s: &NewSnapshot, ns: &str) -> Value {
    let labels: BTreeMap<&str, String> = BTreeMap::from([
        (LABEL_NETWORK, s.network.clone()),
        (LABEL_NODE, s.node.clone()),
        (HEIGHT_LABEL, s.height.to_string()),
        (MANAGED_BY_LABEL, MANAGED_BY.to_string()),
    ]);
    json!({
        "apiVersion": SNAPSHOT_API,
        "kind": "VolumeSnapshot",
        "metadata": {
            "name": s.name,
            "namespace": ns,
            "labels": labels,
            "annotations": {
                HEIGHT_LABEL: s.height.to_string(),
                GENESIS_CHECKSUM_ANNOTATION: s.genesis_checksum,
            },
        },
        "spec": {
            "volumeSnapshotClassName": s.class,
            "source": { "persistentVolumeClaimName": s.claim },
        },
    })
}

/// Creates the snapshot unless one of that name exists.
pub async fn create(client: &Client, ns: &str, s: &NewSnapshot) -> Result<(), Error> {
    create_value(client, ns, desired(s, ns)).await
}

/// Creates a VolumeSnapshot object unless one of its name exists.
pub async fn create_value(client: &Client, ns: &str, object: Value) -> Result<(), Error> {
    let obj: DynamicObject = serde_json::from_value(object)?;
    match api(client, ns).create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a snapshot (gone already is fine).
pub async fn delete(client: &Client, ns: &str, name: &str) -> Result<(), Error> {
    match api(client, ns).delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_back_what_the_operator_wrote_and_its_status() {
        let new = NewSnapshot {
            name: "net-20261129-120000".into(),
            network: "net".into(),
            node: "net-member-0".into(),
            claim: "data-net-member-0-0".into(),
            class: "csi".into(),
            height: 42,
            genesis_checksum: "ab".repeat(32),
        };
        let mut v = desired(&new, "ns");
        v["status"] = json!({"readyToUse": true, "creationTime": "2026-11-29T12:00:01Z"});
        let obj: DynamicObject = serde_json::from_value(v).unwrap();
        let s = Snapshot::from_object(&obj);
        assert!(s.ready && s.managed);
        assert_eq!(s.height, Some(42));
        assert_eq!(s.node.as_deref(), Some("net-member-0"));
        assert_eq!(s.claim.as_deref(), Some("data-net-member-0-0"));
        assert_eq!(s.genesis_checksum.as_deref(), Some(&*"ab".repeat(32)));
        assert_eq!(
            s.created,
            Some("2026-11-29T12:00:01Z".parse::<Timestamp>().unwrap())
        );
        assert!(
            obj.metadata.owner_references.is_none(),
            "a backup outlives its network"
        );
    }
}
