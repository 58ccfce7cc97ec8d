#!/usr/bin/env bash
# The rate-limit service conformance suite (ratelimit/rls/testdata/conformance): replays
# its calls against envoyproxy/ratelimit, the reference, when its binary is built, and
# against Gatehouse (memory and Redis stores), each compared with the answers recorded
# from the reference in cases.json.
#
# usage: conformance.sh REFERENCE_BINARY REFERENCE_VERSION
# RECORD=1 records the reference's answers into cases.json instead of comparing them.
set -euo pipefail
bin=$1 version=$2
go=${GO:-go}
pkg=./ratelimit/rls/
status=0
free_port() { # a loopback port nothing listens on
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
if [ -x "$bin" ]; then
  work=$(mktemp -d)
  pids=()
  cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
  trap cleanup EXIT
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
  pids+=($!)
  wait_port "$redis_port" || { echo "redis-server did not start" >&2; exit 1; }
  mkdir -p "$work/runtime/ratelimit/config"
  cp ratelimit/rls/testdata/conformance/*.yaml "$work/runtime/ratelimit/config/"
  grpc_port=$(free_port) http_port=$(free_port)
  REDIS_SOCKET_TYPE=tcp REDIS_URL=127.0.0.1:$redis_port USE_STATSD=false USE_PROMETHEUS=false \
    GRPC_HOST=127.0.0.1 GRPC_PORT=$grpc_port HOST=127.0.0.1 PORT=$http_port \
    DEBUG_HOST=127.0.0.1 DEBUG_PORT=0 LOG_LEVEL=warn \
    RUNTIME_ROOT=$work/runtime RUNTIME_SUBDIRECTORY=ratelimit RUNTIME_WATCH_ROOT=false \
    "$bin" >"$work/reference.log" 2>&1 &
  pids+=($!)
  wait_port "$grpc_port" || { echo "the reference did not start:" >&2; cat "$work/reference.log" >&2; exit 1; }
  echo "== envoyproxy/ratelimit ($version) against the recorded answers"
  GATEHOUSE_RLS_REFERENCE=127.0.0.1:$grpc_port GATEHOUSE_RLS_REFERENCE_VERSION=$version \
    $go test -count=1 -v -run '^TestConformanceReference$' $pkg ${RECORD:+-args -update-conformance} |
    grep -E 'conformance cases|^\s+conformance_test|got|want|^(ok|FAIL|---)' || status=1
else
  echo "== envoyproxy/ratelimit: not built ($bin), skipped (make load-reference builds it)"
fi
echo "== Gatehouse against the same answers"
$go test -count=1 -v -run '^TestConformance$' $pkg |
  grep -E 'conformance cases|got|want|^(ok|FAIL|---)' || status=1
exit $status
