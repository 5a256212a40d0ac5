//! `besu-standin`: a stand-in for Hyperledger Besu, one process per Besu pod, installed in
//! the test image as `/opt/besu/bin/besu` and started exactly as the operator starts
//! Besu. See `besu_sim::standin` and `hack/besu-sim/README.md`.

fn main() {
    std::process::exit(besu_sim::standin::main());
}
