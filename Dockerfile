# syntax=docker/dockerfile:1
# The besu-operator image: the binary `cargo build --release` produces, on distroless
# cc (glibc + libgcc, nothing else), as the nonroot user 65532. No shell, no package
# manager. Build and push with `make image` / `make image-push` where docker or podman
# exists; tests/install_manifests.rs checks this file's shape.

# Keep at the workspace's rust-version (Cargo.toml).
ARG RUST_VERSION=1.90

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin besu-operator

# Debian 12, as the builder: the binary links against the same glibc.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="besu-operator" \
      org.opencontainers.image.description="Kubernetes operator for Hyperledger Besu private networks" \
      org.opencontainers.image.source="https://github.com/nodeops/besu-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /src/target/release/besu-operator /besu-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/besu-operator"]
CMD ["run"]
