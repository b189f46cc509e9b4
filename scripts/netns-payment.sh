#!/usr/bin/env bash
# Three machines, one payment: the Mint, Alice and Bob as three `pola serve`
# processes in three network namespaces (veth links to a bridge in a fourth),
# over the encrypted noise netlayer. Alice pays Bob 10; Alice's link is then
# deleted; Bob deposits the payment through his own connection to the Mint
# (third-party handoff). Needs root and iproute2.
#
#   scripts/netns-payment.sh [path/to/pola]     (default: target/debug/pola)
#
# The same steps, with assertions, are the test crates/cli/tests/netns.rs.
set -euo pipefail

POLA=$(realpath "${1:-target/debug/pola}")
TAG="pd$$"
HUB="$TAG-h" M="$TAG-m" A="$TAG-a" B="$TAG-b"
DIR=$(mktemp -d)
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for ns in "$HUB" "$M" "$A" "$B"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT

ip netns add "$HUB"
ip -n "$HUB" link add br0 type bridge
ip -n "$HUB" link set br0 up
host() { # ns tag addr
    ip netns add "$1"
    ip -n "$1" link set lo up
    ip -n "$1" link add eth0 type veth peer name "v$2" netns "$HUB"
    ip -n "$HUB" link set "v$2" master br0 up
    ip -n "$1" addr add "$3/24" dev eth0
    ip -n "$1" link set eth0 up
}
host "$M" m 10.213.0.2
host "$A" a 10.213.0.3
host "$B" b 10.213.0.4

serve() { # ns name addr args...
    local ns=$1 name=$2 addr=$3
    shift 3
    ip netns exec "$ns" "$POLA" serve --state "$DIR/$name" --listen "$addr" "$@" >"$DIR/$name.out" &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q '^ready$' "$DIR/$name.out" 2>/dev/null && return; sleep 0.1; done
    echo "$name did not start" >&2
    exit 1
}
uri() { awk -v n="$2" '$1 == n { print $2 }' "$DIR/$1.out"; }
call() { local ns=$1; shift; ip netns exec "$ns" "$POLA" call "$@"; }

serve "$M" mint 10.213.0.2 --mint
serve "$A" alice 10.213.0.3 --wallet-from "$(uri mint mint)" --initial 100
serve "$B" bob 10.213.0.4 --wallet-from "$(uri mint issuer)"
ALICE=$(uri alice wallet) BOB=$(uri bob wallet) BOB_PAYEE=$(uri bob payee)

echo "mint:  $(uri mint mint)"
echo "alice pays bob 10: $(call "$A" "$ALICE" pay "\"$BOB_PAYEE\"" 10)"
echo "alice balance:     $(call "$A" "$ALICE" balance)"
ip -n "$A" link del eth0
echo "(alice's machine is now cut off)"
echo "bob deposits:      $(call "$B" "$BOB" deposit_received)"
echo "bob balance:       $(call "$B" "$BOB" balance)"
echo "bob's connections:"
ip netns exec "$B" ss -tnH state established
