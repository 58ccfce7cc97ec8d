#!/usr/bin/env bash
# Starts envoyproxy/ratelimit, the reference rate-limit service, in the place of Gatehouse
# for `make load-reference`, so that its CPU per ShouldRateLimit is measured by the same
# load, against the same Redis and no-op server, as `make load-redis` measures Gatehouse's.
#
# usage (by gatehouse-load --target-cmd): ratelimit-reference.sh BINARY GRPC_ADDR ADMIN_ADDR GATEHOUSE_CONFIG
# The Redis address is read from the Gatehouse config that gatehouse-load generated; the
# rate-limit configuration is the same as that config's: domain demo, descriptor key device,
# 1,000,000 requests per second per value (so every call is counted and allowed).
set -euo pipefail
bin=$1 grpc=$2 admin=$3 config=$4
redis=$(grep -o '127\.0\.0\.1:[0-9]*' "$config" | head -n 1)
[ -n "$redis" ] || { echo "no Redis address in $config" >&2; exit 1; }
runtime=$(mktemp -d)
trap 'rm -rf "$runtime"' EXIT
mkdir -p "$runtime/ratelimit/config"
cat >"$runtime/ratelimit/config/demo.yaml" <<'YAML'
domain: demo
descriptors:
  - key: device
    rate_limit:
      unit: second
      requests_per_unit: 1000000
YAML
# Its defaults otherwise: Redis over TCP, no pipelining window, no local cache.
export REDIS_SOCKET_TYPE=tcp REDIS_URL=$redis USE_STATSD=false USE_PROMETHEUS=false \
  GRPC_HOST=127.0.0.1 GRPC_PORT=${grpc##*:} HOST=127.0.0.1 PORT=${admin##*:} \
  DEBUG_HOST=127.0.0.1 DEBUG_PORT=0 LOG_LEVEL=warn \
  RUNTIME_ROOT=$runtime RUNTIME_SUBDIRECTORY=ratelimit RUNTIME_WATCH_ROOT=false
"$bin" &
child=$!
trap 'kill $child 2>/dev/null; wait $child 2>/dev/null; rm -rf "$runtime"' EXIT TERM INT
wait $child
