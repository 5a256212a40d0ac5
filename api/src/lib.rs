//! CRD types for `besu.nodeops.dev/v1alpha1`.
