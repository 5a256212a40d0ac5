//! The API server's audit log counts writes per user agent exactly: later tests
//! use it to prove that an idle operator writes nothing.

mod support;

use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use support::{Check, TestNamespace, cluster, not_yet, unique_name, wait_until};

#[tokio::test]
async fn audit_log_counts_writes_by_user_agent_exactly() -> anyhow::Result<()> {
    let admin = cluster().client().await?;
    let ns = TestNamespace::create(&admin, "audit").await?;
    let agent = unique_name("besu-audit-writer");
    let other_agent = unique_name("besu-audit-reader");
    let writer = cluster().client_with_user_agent(&agent).await?;
    let reader = cluster().client_with_user_agent(&other_agent).await?;
    let maps: Api<ConfigMap> = Api::namespaced(writer, &ns.name);
    let read_maps: Api<ConfigMap> = Api::namespaced(reader, &ns.name);
    let audit = cluster().audit();

    let since = SystemTime::now();
    // 3 creates + 2 patches + 1 update + 1 delete = 7 writes; the reads in
    // between must not count, and the reader agent writes nothing.
    for i in 0..3 {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": format!("cm-{i}")},
            "data": {"i": i.to_string()}
        }))?;
        maps.create(&PostParams::default(), &cm).await?;
    }
    maps.list(&ListParams::default()).await?;
    read_maps.list(&ListParams::default()).await?;
    read_maps.get("cm-0").await?;
    for i in 0..2 {
        maps.patch(
            &format!("cm-{i}"),
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"patched": "yes"}})),
        )
        .await?;
    }
    let mut cm2 = maps.get("cm-2").await?;
    cm2.data
        .get_or_insert_default()
        .insert("updated".into(), "yes".into());
    maps.replace("cm-2", &PostParams::default(), &cm2).await?;
    maps.delete("cm-0", &DeleteParams::default()).await?;
    const WRITES: usize = 7;

    // The log line can land a moment after the response: wait until all are
    // there, then the window closes and the count must be exact.
    let seen = wait_until(
        &format!("{WRITES} writes by {agent} in the audit log"),
        Duration::from_secs(30),
        || async {
            let events = audit.writes_by_agent(&agent, since, SystemTime::now())?;
            if events.len() >= WRITES {
                Ok(Check::Done(()))
            } else {
                not_yet(format!(
                    "{} events: {:#?}",
                    events.len(),
                    events.iter().map(|e| e.summary()).collect::<Vec<_>>()
                ))
            }
        },
    )
    .await;
    seen?;
    let until = SystemTime::now();
    let events = audit.writes_by_agent(&agent, since, until)?;
    for e in &events {
        eprintln!("audit: {}", e.summary());
    }
    assert_eq!(events.len(), WRITES, "writes by {agent}");
    let verbs: Vec<&str> = events.iter().map(|e| e.verb.as_str()).collect();
    for (verb, n) in [("create", 3), ("patch", 2), ("update", 1), ("delete", 1)] {
        assert_eq!(
            verbs.iter().filter(|v| **v == verb).count(),
            n,
            "{verb} count in {verbs:?}"
        );
    }
    assert!(events.iter().all(|e| {
        e.object_ref
            .as_ref()
            .is_some_and(|o| o.namespace.as_deref() == Some(ns.name.as_str()))
    }));

    let reader_writes = audit.writes_by_agent(&other_agent, since, until)?;
    assert!(
        reader_writes.is_empty(),
        "the reader agent wrote: {:?}",
        reader_writes
            .iter()
            .map(|e| e.summary())
            .collect::<Vec<_>>()
    );
    // ...but its reads were recorded, so the agent did reach the log.
    let reader_events = audit
        .events()?
        .into_iter()
        .filter(|e| e.user_agent == other_agent && e.stage == "ResponseComplete")
        .count();
    assert_eq!(reader_events, 2, "reads (list + get) by {other_agent}");

    // A window that ends before the writes sees none of them.
    assert!(
        audit
            .writes_by_agent(
                &agent,
                since - Duration::from_secs(60),
                since - Duration::from_secs(1)
            )?
            .is_empty()
    );
    ns.cleanup().await
}
