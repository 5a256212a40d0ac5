//! Read-your-writes over watch caches.
//!
//! A reconcile that decides from a reflector store sees the cluster as it was a moment
//! ago. For objects others write (pods, a node's status) that is no worse than a list
//! made a moment earlier: the store only ever moves forward through the states the API
//! server had. Nor can it cost quorum: while anything changes, the network reconcile
//! reads the chain itself, and a validator counts as up for the rollout's budget only
//! when its own JSON-RPC answers in sync with the head now. The hazard is the
//! reconcile's own writes. A store that has not yet seen a
//! rollout permit it granted, or a node it created or deleted, would have the next
//! reconcile decide as if that write had not happened, and repeat or contradict it (a
//! second permit is a second validator down).
//!
//! So every write a decision rests on is recorded here with the resourceVersion the API
//! server returned, per scope (the network that wrote it). Before deciding from a store,
//! a reconcile asks whether the store shows every write of its scope; if not, it reads
//! live instead and the record is cleared. resourceVersions are compared as numbers:
//! kube-apiserver's are etcd revisions, one counter for the whole cluster, so a copy at
//! or after the written version includes the write (Kubernetes documents this order
//! since 1.35, KEP-5504). A version that is not a number is never taken as shown; only a
//! live read clears it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use kube::{Resource, ResourceExt};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// The object at this resourceVersion or later.
    AtLeast(u64),
    /// The object absent, or being deleted.
    Gone,
}

/// One scope's writes, by (kind, name).
type ScopeWrites = BTreeMap<(String, String), Expect>;

/// The writes of each scope that a cache must show before it is decided from.
#[derive(Default)]
pub struct Writes(Mutex<BTreeMap<String, ScopeWrites>>);

fn version(v: Option<String>) -> u64 {
    v.and_then(|v| v.parse().ok()).unwrap_or(u64::MAX)
}

impl Writes {
    fn record(&self, scope: &str, kind: &str, name: &str, expect: Expect) {
        if let Ok(mut all) = self.0.lock() {
            let of_scope = all.entry(scope.to_string()).or_default();
            let entry = of_scope
                .entry((kind.to_string(), name.to_string()))
                .or_insert(expect);
            *entry = match (*entry, expect) {
                (Expect::AtLeast(a), Expect::AtLeast(b)) => Expect::AtLeast(a.max(b)),
                (_, e) => e,
            };
        }
    }

    /// `obj` as the API server returned it from a create, patch or apply by `scope`.
    pub fn wrote<K: Resource<DynamicType = ()>>(&self, scope: &str, obj: &K) {
        let expect = Expect::AtLeast(version(obj.resource_version()));
        self.record(scope, &K::kind(&()), &obj.name_any(), expect);
    }

    /// A delete of `name` by `scope`.
    pub fn deleted<K: Resource<DynamicType = ()>>(&self, scope: &str, name: &str) {
        self.record(scope, &K::kind(&()), name, Expect::Gone);
    }

    /// Whether the cache, asked by name, shows every write of `scope` to objects of kind
    /// `K`. Writes it shows are forgotten (a store only moves forward).
    pub fn shown<K, F>(&self, scope: &str, cached: F) -> bool
    where
        K: Resource<DynamicType = ()>,
        F: Fn(&str) -> Option<std::sync::Arc<K>>,
    {
        let kind = K::kind(&()).to_string();
        let Ok(mut all) = self.0.lock() else {
            return false;
        };
        let Some(of_scope) = all.get_mut(scope) else {
            return true;
        };
        of_scope.retain(|(k, name), expect| {
            if *k != kind {
                return true;
            }
            let copy = cached(name);
            let met = match (*expect, copy) {
                (Expect::Gone, None) => true,
                (Expect::Gone, Some(c)) => c.meta().deletion_timestamp.is_some(),
                (Expect::AtLeast(_), None) => false,
                (Expect::AtLeast(v), Some(c)) => {
                    v != u64::MAX && version(c.resource_version()) >= v
                }
            };
            !met
        });
        !of_scope.keys().any(|(k, _)| *k == kind)
    }

    /// A live read of `scope`'s objects of kind `K` was made: it shows every write.
    pub fn read_live<K: Resource<DynamicType = ()>>(&self, scope: &str) {
        let kind = K::kind(&()).to_string();
        if let Ok(mut all) = self.0.lock()
            && let Some(of_scope) = all.get_mut(scope)
        {
            of_scope.retain(|(k, _), _| *k != kind);
        }
    }

    /// Drops what is recorded for `scope` (its network is gone).
    pub fn forget(&self, scope: &str) {
        if let Ok(mut all) = self.0.lock() {
            all.remove(scope);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap as Obj;
    use std::collections::HashMap;
    use std::sync::Arc;

    fn node(name: &str, rv: &str, deleting: bool) -> Arc<Obj> {
        // Any kind serves: the records are by kind and name.
        let mut n = Obj::default();
        n.metadata.name = Some(name.to_string());
        n.metadata.resource_version = Some(rv.to_string());
        if deleting {
            n.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                ));
        }
        Arc::new(n)
    }

    fn cache(nodes: &[Arc<Obj>]) -> HashMap<String, Arc<Obj>> {
        nodes.iter().map(|n| (n.name_any(), n.clone())).collect()
    }

    #[test]
    fn a_cache_shows_a_write_only_at_or_after_its_version() {
        let w = Writes::default();
        w.wrote("ns/a", node("a-validator-0", "120", false).as_ref());
        let older = cache(&[node("a-validator-0", "119", false)]);
        assert!(!w.shown::<Obj, _>("ns/a", |n| older.get(n).cloned()));
        // Still recorded: the stale copy did not clear it.
        assert!(!w.shown::<Obj, _>("ns/a", |n| older.get(n).cloned()));
        // Another scope's writes are not this one's.
        assert!(w.shown::<Obj, _>("ns/b", |n| older.get(n).cloned()));
        let absent: HashMap<String, Arc<Obj>> = HashMap::new();
        assert!(!w.shown::<Obj, _>("ns/a", |n| absent.get(n).cloned()));
        let same = cache(&[node("a-validator-0", "120", false)]);
        assert!(w.shown::<Obj, _>("ns/a", |n| same.get(n).cloned()));
        // Forgotten once shown.
        assert!(w.shown::<Obj, _>("ns/a", |n| older.get(n).cloned()));
    }

    #[test]
    fn a_delete_is_shown_by_absence_or_a_deletion_timestamp() {
        let w = Writes::default();
        w.deleted::<Obj>("ns/a", "a-member-0");
        let still = cache(&[node("a-member-0", "300", false)]);
        assert!(!w.shown::<Obj, _>("ns/a", |n| still.get(n).cloned()));
        let going = cache(&[node("a-member-0", "301", true)]);
        assert!(w.shown::<Obj, _>("ns/a", |n| going.get(n).cloned()));
        w.deleted::<Obj>("ns/a", "a-member-0");
        let absent: HashMap<String, Arc<Obj>> = HashMap::new();
        assert!(w.shown::<Obj, _>("ns/a", |n| absent.get(n).cloned()));
    }

    #[test]
    fn an_unreadable_version_is_cleared_only_by_a_live_read() {
        let w = Writes::default();
        w.wrote("ns/a", node("a-bootnode-0", "not-a-number", false).as_ref());
        let any = cache(&[node("a-bootnode-0", "99999999", false)]);
        assert!(!w.shown::<Obj, _>("ns/a", |n| any.get(n).cloned()));
        w.read_live::<Obj>("ns/a");
        assert!(w.shown::<Obj, _>("ns/a", |n| any.get(n).cloned()));
    }

    #[test]
    fn the_later_of_two_writes_is_awaited() {
        let w = Writes::default();
        w.wrote("ns/a", node("a-validator-1", "200", false).as_ref());
        w.wrote("ns/a", node("a-validator-1", "150", false).as_ref());
        let between = cache(&[node("a-validator-1", "180", false)]);
        assert!(!w.shown::<Obj, _>("ns/a", |n| between.get(n).cloned()));
    }
}
