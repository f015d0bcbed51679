#!/usr/bin/env bash
# A Parley cluster on one machine: Redis, two SFU nodes and two signaling nodes (HTTP_PORT and
# HTTP_PORT+1; open a meeting on both: its participants meet across the nodes). Put a load
# balancer in front for one address (deploy/nginx.conf).
# Usage: deploy/cluster.sh [ANNOUNCE_IP]    (after `make build`; Ctrl-C stops everything)
# On several machines run the same commands there, with --redis pointing at the shared Redis,
# --announce-ip set to each SFU machine's address, and --control-host/--control-url reachable
# from the signaling nodes.
set -euo pipefail
cd "$(dirname "$0")/.."
PARLEY=${PARLEY:-.build/release/parley}
ANNOUNCE_IP=${1:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-6390}
HTTP_PORT=${HTTP_PORT:-8080}
STATE=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$STATE"' EXIT
# The SFU nodes' control API and the signaling nodes share this token; the secret signs tokens
# and invite links, the same on every signaling node.
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$STATE/control-token"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$STATE/secret"

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes --dir "$STATE" &
sleep 0.5
REDIS=redis://127.0.0.1:$REDIS_PORT
"$PARLEY" sfu --redis "$REDIS" --node-id sfu-1 --udp-port 40000 --announce-ip "$ANNOUNCE_IP" --control-port 9101 \
  --control-token-file "$STATE/control-token" &
"$PARLEY" sfu --redis "$REDIS" --node-id sfu-2 --udp-port 40100 --announce-ip "$ANNOUNCE_IP" --control-port 9102 \
  --control-token-file "$STATE/control-token" &
for NODE in 1 2; do
  "$PARLEY" signal --redis "$REDIS" --node-id "signal-$NODE" --http-port $((HTTP_PORT + NODE - 1)) \
    --control-token-file "$STATE/control-token" --secret-file "$STATE/secret" &
done
echo "Parley cluster: http://127.0.0.1:$HTTP_PORT/m/demo and http://127.0.0.1:$((HTTP_PORT + 1))/m/demo" \
  "(one meeting, two signaling nodes; Redis on $REDIS_PORT; Ctrl-C stops it)"
wait
