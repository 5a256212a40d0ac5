//! Node keys, enode URLs, BFT extraData and genesis: pure functions, no Kubernetes.
