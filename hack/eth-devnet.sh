#!/usr/bin/env bash
# A single-node proof-of-stake devnet from scratch for the EthereumNode (Geth + Prysm), with
# the pinned clients built by hack/build-tools.sh (tools geth, prysm). Loopback only.
#
#   hack/eth-devnet.sh genesis OUTDIR   the network's files, what an integration test turns
#                                       into a ConfigMap and a Secret:
#       config.yaml        Prysm's chain config (mainnet preset, every fork through Fulu at
#                          epoch 0, short slots)
#       genesis.json       Geth's genesis (every fork through Osaka at genesis; `geth init`)
#       genesis.ssz        the beacon genesis state (beacon-chain --genesis-state)
#       keystores/keystore-<i>.json   EIP-2335 keystores of the N deterministic interop
#                          validator keys the genesis state activates (i = 0..N-1)
#       keystore-password.txt         their password (one for all)
#       pubkeys.txt        the validators' public keys, one a line, in index order
#   hack/eth-devnet.sh run OUTDIR       the verified recipe, on 127.0.0.1: genesis, node A
#                                       (geth + beacon-chain + validator from the keystores),
#                                       finality, node B (geth + beacon-chain, checkpoint sync
#                                       from A, static peers) at A's head, a wrong JWT refused;
#                                       then stops everything. Figures on stderr and in
#                                       OUTDIR/run-summary.txt; logs in OUTDIR/logs.
#   hack/eth-devnet.sh stop OUTDIR      stop what a `run` left behind (its pid files)
#
# Settings (environment): ETH_DEVNET_VALIDATORS (8), ETH_DEVNET_CHAIN_ID (32382),
# ETH_DEVNET_SECONDS_PER_SLOT (2), ETH_DEVNET_GENESIS_DELAY (seconds from now, 30),
# ETH_DEVNET_PASSWORD (the keystores' password), ETH_DEVNET_PORT_BASE (run: 21000).
#
# Nothing here dials out: Geth runs with --nodiscover --nat none and no bootnodes, Prysm with
# --no-discovery and no bootstrap nodes, every listener on 127.0.0.1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

N=${ETH_DEVNET_VALIDATORS:-8}
CHAIN_ID=${ETH_DEVNET_CHAIN_ID:-32382}
SECONDS_PER_SLOT=${ETH_DEVNET_SECONDS_PER_SLOT:-2}
GENESIS_DELAY=${ETH_DEVNET_GENESIS_DELAY:-30}
PASSWORD=${ETH_DEVNET_PASSWORD:-besu-operator-devnet}
PORT_BASE=${ETH_DEVNET_PORT_BASE:-21000}
# Where blocks' fees go; also funded at genesis (the validators' fee recipient).
FEE_RECIPIENT=0x8943545177806ED17B9F23F0a21ee5948eCaa776
# Post-Electra deposits are read from this contract's logs by the execution client; the
# genesis does not deploy it (every validator is in the genesis state).
DEPOSIT_CONTRACT=0x4242424242424242424242424242424242424242

say() { printf '[eth-devnet] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

bindir=$("$here/build-tools.sh" bindir)
GETH=$bindir/geth/geth
BEACON=$bindir/prysm/beacon-chain
VALIDATOR=$bindir/prysm/validator
PRYSMCTL=$bindir/prysm/prysmctl
KEYGEN=$bindir/prysm/unencrypted-keys-gen
KEYSTORES=$bindir/prysm/keystores
need_bins() {
  local b
  for b in "$GETH" "$BEACON" "$VALIDATOR" "$PRYSMCTL" "$KEYGEN" "$KEYSTORES"; do
    [ -x "$b" ] || die "$b is missing: hack/build-tools.sh build geth prysm"
  done
}

# --- genesis ---------------------------------------------------------------------

write_config_yaml() { # FILE
  # Prysm starts from its mainnet config and overrides these. The preset must stay mainnet:
  # Prysm fixes the preset's sizes (SLOTS_PER_EPOCH 32, sync committee 512, Fulu's proposer
  # lookahead) at compile time (the `minimal` build tag), so only the slot time is short.
  cat >"$1" <<EOF
PRESET_BASE: 'mainnet'
CONFIG_NAME: 'besu-operator-devnet'
MIN_GENESIS_ACTIVE_VALIDATOR_COUNT: $N
MIN_GENESIS_TIME: 0
GENESIS_DELAY: 0
GENESIS_FORK_VERSION: 0x10000000
ALTAIR_FORK_VERSION: 0x20000000
ALTAIR_FORK_EPOCH: 0
BELLATRIX_FORK_VERSION: 0x30000000
BELLATRIX_FORK_EPOCH: 0
CAPELLA_FORK_VERSION: 0x40000000
CAPELLA_FORK_EPOCH: 0
DENEB_FORK_VERSION: 0x50000000
DENEB_FORK_EPOCH: 0
ELECTRA_FORK_VERSION: 0x60000000
ELECTRA_FORK_EPOCH: 0
FULU_FORK_VERSION: 0x70000000
FULU_FORK_EPOCH: 0
TERMINAL_TOTAL_DIFFICULTY: 0
SECONDS_PER_SLOT: $SECONDS_PER_SLOT
SLOT_DURATION_MS: $((SECONDS_PER_SLOT * 1000))
SECONDS_PER_ETH1_BLOCK: $SECONDS_PER_SLOT
ETH1_FOLLOW_DISTANCE: 12
MIN_VALIDATOR_WITHDRAWABILITY_DELAY: 1
SHARD_COMMITTEE_PERIOD: 1
DEPOSIT_CHAIN_ID: $CHAIN_ID
DEPOSIT_NETWORK_ID: $CHAIN_ID
DEPOSIT_CONTRACT_ADDRESS: $DEPOSIT_CONTRACT
EOF
}

write_geth_genesis_in() { # FILE
  # Every fork through Osaka at genesis (prysmctl sets the fork times from config.yaml).
  # The system contracts Prague needs (EIP-2935 history, EIP-4788 beacon roots, EIP-7002
  # withdrawal and EIP-7251 consolidation queues) and the CREATE2 deployer come from this
  # Geth's own dev genesis (`geth --dev dumpgenesis`), the code the release ships.
  local dev; dev=$("$GETH" --dev dumpgenesis 2>/dev/null)
  DEV="$dev" python3 - "$1" "$CHAIN_ID" "$FEE_RECIPIENT" "$DEPOSIT_CONTRACT" <<'EOF'
import json, os, sys
out, chain_id, fee, deposit = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
dev = json.loads(os.environ["DEV"])
alloc = {a: acc for a, acc in dev["alloc"].items() if acc.get("code")}
alloc[fee.lower().removeprefix("0x")] = {"balance": hex(10**9 * 10**18)}
blob = {"target": 6, "max": 9, "baseFeeUpdateFraction": 5007716}
config = {
    "chainId": chain_id,
    **{k: 0 for k in ("homesteadBlock", "eip150Block", "eip155Block", "eip158Block",
                      "byzantiumBlock", "constantinopleBlock", "petersburgBlock",
                      "istanbulBlock", "berlinBlock", "londonBlock", "mergeNetsplitBlock")},
    "terminalTotalDifficulty": 0,
    "shanghaiTime": 0, "cancunTime": 0, "pragueTime": 0, "osakaTime": 0,
    "depositContractAddress": deposit,
    "blobSchedule": {
        "cancun": {"target": 3, "max": 6, "baseFeeUpdateFraction": 3338477},
        "prague": blob,
        "osaka": blob,
    },
}
genesis = {
    "config": config, "nonce": "0x0", "timestamp": "0x0", "extraData": "0x",
    "gasLimit": hex(60_000_000), "difficulty": "0x0", "baseFeePerGas": hex(10**9),
    "mixHash": "0x" + "00" * 32, "coinbase": "0x" + "00" * 20, "alloc": alloc,
}
with open(out, "w") as f:
    json.dump(genesis, f, indent=1)
EOF
}

write_keystores() { # OUTDIR
  # The deterministic interop keys (the ones `prysmctl testnet generate-genesis
  # --num-validators` activates), each encrypted into an EIP-2335 keystore by Prysm's own
  # tools/keystores (go-eth2-wallet-encryptor-keystorev4, the library the validator client
  # decrypts with).
  local out=$1 w i keys
  w=$(mktemp -d "${TMPDIR:-/tmp}/eth-devnet-keys.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$w'" RETURN
  "$KEYGEN" --num-keys "$N" --start-index 0 --output-json "$w/keys.json" >/dev/null
  mkdir -p "$out/keystores"
  printf '%s' "$PASSWORD" >"$out/keystore-password.txt"
  : >"$out/pubkeys.txt"
  # keys.json holds the secret keys base64-encoded ([]byte fields of Go's encoding/json).
  keys=$(python3 -c 'import base64, json, sys
for k in json.load(open(sys.argv[1]))["keys"]:
    print(base64.b64decode(k["validator_key"]).hex())' "$w/keys.json")
  i=0
  for k in $keys; do
    "$KEYSTORES" encrypt --private-key "$k" --password "$PASSWORD" \
      --output-path "$out/keystores/keystore-$i.json" </dev/null >"$w/enc.out" 2>&1 ||
      { cat "$w/enc.out" >&2; die "keystores encrypt failed for validator $i"; }
    python3 -c 'import json,sys; print("0x"+json.load(open(sys.argv[1]))["pubkey"])' \
      "$out/keystores/keystore-$i.json" >>"$out/pubkeys.txt"
    i=$((i + 1))
  done
  [ "$i" = "$N" ] || die "expected $N interop keys, got $i"
}

cmd_genesis() { # OUTDIR
  local out=$1
  need_bins
  mkdir -p "$out"
  local t0=$SECONDS genesis_time=$(($(date +%s) + GENESIS_DELAY))
  write_config_yaml "$out/config.yaml"
  write_geth_genesis_in "$out/genesis.in.json"
  "$PRYSMCTL" testnet generate-genesis --fork=fulu --num-validators="$N" \
    --genesis-time="$genesis_time" --chain-config-file="$out/config.yaml" \
    --geth-genesis-json-in="$out/genesis.in.json" --geth-genesis-json-out="$out/genesis.json" \
    --output-ssz="$out/genesis.ssz" >"$out/prysmctl.log" 2>&1 ||
    { tail -n 20 "$out/prysmctl.log" >&2; die "prysmctl testnet generate-genesis failed"; }
  rm -f "$out/genesis.in.json"
  chmod 0644 "$out/genesis.json" "$out/genesis.ssz" # prysmctl writes them 0600
  write_keystores "$out"
  echo "$genesis_time" >"$out/genesis-time.txt"
  say "genesis in $out: $N validators, chain id $CHAIN_ID, ${SECONDS_PER_SLOT}s slots, genesis at $(date -u -d "@$genesis_time" +%T) UTC ($((SECONDS - t0)) s)"
}

# --- run: the loopback recipe -------------------------------------------------------

started=()
start() { # NAME CMD...: runs in the background, log in $dir/logs/NAME.log
  local name=$1; shift
  "$@" >"$dir/logs/$name.log" 2>&1 &
  echo $! >"$dir/pids/$name.pid"
  started+=("$name")
}
stop_all() { # DIR
  local f pid
  for f in "$1"/pids/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
  done
  for f in "$1"/pids/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}
rpc() { # PORT METHOD [PARAMS-JSON]
  curl -sf --max-time 5 -H 'Content-Type: application/json' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$2\",\"params\":${3:-[]}}" "http://127.0.0.1:$1"
}
api() { curl -sf --max-time 5 "http://127.0.0.1:$1$2"; } # PORT PATH
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
wait_until() { # SECONDS DESCRIPTION CMD...
  local limit=$1 what=$2; shift 2
  local t0=$SECONDS
  until "$@" >/dev/null 2>&1; do
    [ $((SECONDS - t0)) -lt "$limit" ] || die "timed out after ${limit}s waiting for $what (logs: $dir/logs)"
    sleep 1
  done
}

# Ports of node X (0 = A, 1 = B): geth p2p, http, authrpc; beacon p2p, grpc, http, metrics;
# validator metrics.
port() { echo $((PORT_BASE + $1 * 100 + $2)); }

geth_toml() { # X [STATIC_ENODE]: geth's config file. There is no flag for the p2p listen
  # address (--port listens on every interface) nor for static peers.
  {
    echo '[Node.P2P]'
    echo "ListenAddr = \"127.0.0.1:$(port "$1" 3)\""
    [ -z "${2:-}" ] || echo "StaticNodes = [\"$2\"]"
  } >"$dir/node$1/geth.toml"
}
geth_cmd() { # X: the execution client of node X
  local x=$1 d=$dir/node$1
  echo "$GETH" --config "$d/geth.toml" --datadir "$d/geth" --networkid "$CHAIN_ID" \
    --nodiscover --nat none --maxpeers 5 \
    --http --http.addr 127.0.0.1 --http.port "$(port "$x" 45)" --http.api eth,net,web3,admin \
    --authrpc.addr 127.0.0.1 --authrpc.port "$(port "$x" 51)" --authrpc.jwtsecret "$d/jwt.hex" \
    --ipcdisable --syncmode full
}
# --disable-quic: Prysm v7.1.2 pins a quic-go (v0.49.1-0.20250925085836) that panics on Go
# 1.26's crypto/tls ("panic: crypto/tls bug: where's my session ticket?", quic-go#5572,
# fixed in v0.57.1) at the first inbound QUIC handshake: built with Go 1.26, the beacon
# node dies when a peer dials its QUIC port. TCP only.
# --min-sync-peers: 0 for the first node (nobody to sync from), 1 for a node that joins.
beacon_cmd() { # X MIN_SYNC_PEERS [extra flags]: the beacon node of node X
  local x=$1 d=$dir/node$1 msp=$2; shift 2
  echo "$BEACON" --datadir "$d/beacon" --accept-terms-of-use \
    --chain-config-file "$dir/config.yaml" \
    --execution-endpoint "http://127.0.0.1:$(port "$x" 51)" --jwt-secret "$d/jwt.hex" \
    --min-sync-peers "$msp" --no-discovery --disable-quic \
    --p2p-host-ip 127.0.0.1 --p2p-local-ip 127.0.0.1 \
    --p2p-tcp-port "$(port "$x" 13)" --p2p-udp-port "$(port "$x" 12)" \
    --p2p-static-id \
    --rpc-host 127.0.0.1 --rpc-port "$(port "$x" 40)" \
    --http-host 127.0.0.1 --http-port "$(port "$x" 35)" \
    --monitoring-host 127.0.0.1 --monitoring-port "$(port "$x" 80)" \
    --supernode --suggested-fee-recipient "$FEE_RECIPIENT" "$@"
}

head_slot() { api "$1" /eth/v1/beacon/headers/head | jq_py 'd["data"]["header"]["message"]["slot"]'; }
finalized_epoch() { api "$1" /eth/v1/beacon/states/head/finality_checkpoints | jq_py 'd["data"]["finalized"]["epoch"]'; }
el_block() { rpc "$1" eth_blockNumber | jq_py 'int(d["result"],16)'; }
el_block_gt() { [ "$(el_block "$(port "$1" 45)")" -gt "$2" ]; } # X N
finalized_gt0() { [ "$(finalized_epoch "$(port 0 35)")" -gt 0 ]; }
node_b_at_head() {
  local a b; a=$(head_slot "$(port 0 35)"); b=$(head_slot "$(port 1 35)")
  [ "$b" -ge "$a" ] || [ $((a - b)) -le 1 ] && [ "$(el_block "$(port 1 45)")" -gt 0 ]
}

cmd_run() { # OUTDIR
  dir=$1
  need_bins
  [ ! -d "$dir/pids" ] || stop_all "$dir"
  rm -rf "$dir"; mkdir -p "$dir/logs" "$dir/pids" "$dir/node0" "$dir/node1"
  trap 'stop_all "$dir"' EXIT
  local t_start=$SECONDS
  cmd_genesis "$dir"
  local genesis_time; genesis_time=$(cat "$dir/genesis-time.txt")

  # Each node has its own JWT secret (32 random bytes, hex), shared by its two clients.
  local x
  for x in 0 1; do openssl rand -hex 32 >"$dir/node$x/jwt.hex"; done
  for x in 0 1; do
    "$GETH" init --datadir "$dir/node$x/geth" "$dir/genesis.json" >"$dir/logs/geth-init-$x.log" 2>&1 ||
      { tail "$dir/logs/geth-init-$x.log" >&2; die "geth init failed"; }
  done

  # Node A.
  geth_toml 0
  # shellcheck disable=SC2046
  start geth-a $(geth_cmd 0)
  # shellcheck disable=SC2046
  start beacon-a $(beacon_cmd 0 0 --genesis-state "$dir/genesis.ssz")
  # The validator client: import the keystores into a wallet, then run from the wallet.
  local wd=$dir/node0/wallet
  printf '%s' 'Wallet-passw0rd!' >"$dir/node0/wallet-password.txt"
  local t_imp=$SECONDS
  "$VALIDATOR" accounts import --accept-terms-of-use --keys-dir "$dir/keystores" \
    --wallet-dir "$wd" --wallet-password-file "$dir/node0/wallet-password.txt" \
    --account-password-file "$dir/keystore-password.txt" >"$dir/logs/validator-import.log" 2>&1 ||
    { tail "$dir/logs/validator-import.log" >&2; die "validator accounts import failed"; }
  say "validator accounts import: $N keystores in $((SECONDS - t_imp)) s"
  start validator-a "$VALIDATOR" --accept-terms-of-use --chain-config-file "$dir/config.yaml" \
    --wallet-dir "$wd" --wallet-password-file "$dir/node0/wallet-password.txt" \
    --datadir "$dir/node0/validator" --beacon-rpc-provider "127.0.0.1:$(port 0 40)" \
    --monitoring-host 127.0.0.1 --monitoring-port "$(port 0 81)" \
    --suggested-fee-recipient "$FEE_RECIPIENT"

  wait_until 60 "node A's geth" rpc "$(port 0 45)" eth_blockNumber
  local ghash; ghash=$(rpc "$(port 0 45)" eth_getBlockByNumber '["0x0",false]' | jq_py 'd["result"]["hash"]')
  say "geth: genesis block $ghash"
  wait_until 120 "node A's beacon API" api "$(port 0 35)" /eth/v1/node/health
  local wait_s=$((genesis_time - $(date +%s)))
  [ "$wait_s" -le 0 ] || { say "waiting ${wait_s}s for genesis"; sleep "$wait_s"; }
  wait_until 120 "node A's first blocks" el_block_gt 0 2
  say "node A: execution block $(el_block "$(port 0 45)") at slot $(head_slot "$(port 0 35)")"
  wait_until 900 "finality on node A" finalized_gt0
  local t_final=$(($(date +%s) - genesis_time))
  say "node A: finalized epoch $(finalized_epoch "$(port 0 35)") ${t_final}s after genesis (slot $(head_slot "$(port 0 35)"))"

  # Node B: geth peers statically with A's geth; beacon-chain starts from A's finalized
  # checkpoint and peers with A's beacon.
  local enode_a peer_a
  enode_a=$(rpc "$(port 0 45)" admin_nodeInfo | jq_py 'd["result"]["enode"]')
  # /eth/v1/node/identity answers 500 under --no-discovery ("Could not obtain enr: could not
  # serialize nil record"): the multiaddr comes from the log (or from the key: the peer ID
  # is derived from the secp256k1 key in <datadir>/network-keys, or --p2p-priv-key).
  peer_a=$(sed -n 's|.*msg="Node started p2p server" multiAddr="\(/ip4/[^"]*/tcp/[^"]*\)".*|\1|p' "$dir/logs/beacon-a.log" | head -n 1)
  [ -n "$peer_a" ] && [ -n "$enode_a" ] || die "could not read node A's enode or multiaddr"
  geth_toml 1 "$enode_a"
  say "node B: static peers $enode_a and $peer_a"
  local t_b=$SECONDS
  # shellcheck disable=SC2046
  start geth-b $(geth_cmd 1)
  # shellcheck disable=SC2046
  start beacon-b $(beacon_cmd 1 1 --checkpoint-sync-url "http://127.0.0.1:$(port 0 35)" \
    --genesis-beacon-api-url "http://127.0.0.1:$(port 0 35)" --peer "$peer_a")
  wait_until 600 "node B at node A's head" node_b_at_head
  local b_sync=$((SECONDS - t_b))
  say "node B: at head slot $(head_slot "$(port 1 35)") (A: $(head_slot "$(port 0 35)")), execution block $(el_block "$(port 1 45)") (A: $(el_block "$(port 0 45)")) ${b_sync}s after start"

  # A wrong JWT: node B's beacon restarted with node A's secret against node B's geth.
  kill "$(cat "$dir/pids/beacon-b.pid")"; wait "$(cat "$dir/pids/beacon-b.pid")" 2>/dev/null || true
  cp "$dir/logs/beacon-b.log" "$dir/logs/beacon-b-1.log"
  local wrong=$dir/node1/wrong-jwt.hex; openssl rand -hex 32 >"$wrong"
  # shellcheck disable=SC2046
  start beacon-b $(beacon_cmd 1 1 --peer "$peer_a" | sed "s|$dir/node1/jwt.hex|$wrong|")
  sleep 20
  say "wrong JWT, beacon-chain side:"; grep -m 3 -iE 'unauthorized|401|jwt|signature' "$dir/logs/beacon-b.log" >&2 || true
  # Geth logs nothing about a refused token at its default verbosity; the 401 body says why.
  say "wrong JWT, geth side:"; grep -m 3 -iE 'unauthorized|jwt|token|signature' "$dir/logs/geth-b.log" >&2 || true
  say "wrong JWT, a raw engine call:"
  curl -s --max-time 5 -H 'Content-Type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"engine_exchangeCapabilities","params":[[]]}' \
    "http://127.0.0.1:$(port 1 51)" -w ' (HTTP %{http_code})\n' >&2 || true

  {
    echo "validators=$N seconds_per_slot=$SECONDS_PER_SLOT chain_id=$CHAIN_ID"
    echo "genesis_block_hash=$ghash"
    echo "time_to_finality_s=$t_final"
    echo "node_b_sync_s=$b_sync"
    echo "total_s=$((SECONDS - t_start))"
  } >"$dir/run-summary.txt"
  say "done in $((SECONDS - t_start)) s; stopping (summary: $dir/run-summary.txt)"
}

case "${1:-}" in
  genesis) [ $# = 2 ] || die "usage: $0 genesis OUTDIR"; cmd_genesis "$2" ;;
  run) [ $# = 2 ] || die "usage: $0 run OUTDIR"; cmd_run "$2" ;;
  stop) [ $# = 2 ] || die "usage: $0 stop OUTDIR"; stop_all "$2" ;;
  *) echo "usage: $0 genesis OUTDIR | run OUTDIR | stop OUTDIR" >&2; exit 2 ;;
esac
