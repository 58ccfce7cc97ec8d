#!/usr/bin/env bash
# Tests the Helm chart in k8s/gatehouse, offline:
#   1. helm lint --strict with every k8s/gatehouse/ci/*-values.yaml
#   2. helm template with each of them: the rendered kinds and their counts must be the ones
#      typed in want_kinds below (an empty render fails), and every manifest validated by kubectl-validate against
#      Kubernetes 1.30's built-in schemas (unknown fields and wrong types fail) and the
#      vendored ServiceMonitor and PrometheusRule CRDs in k8s/tests/crds
#   3. the ServiceMonitor and the PrometheusRule are only rendered when their API exists;
#      the dashboard ConfigMap carries dashboards/gatehouse.json unchanged, with the sidecar's label
#   4. negative cases (k8s/tests/negative/*.yaml): helm template must fail with the message in
#      the file's `# expect:` line
#   5. golden snapshot of the default render (k8s/tests/golden/default.yaml);
#      UPDATE_GOLDEN=1 scripts/chart-test.sh rewrites it
#   6. the configuration each CI values file renders passes `gatehouse validate` (a file that
#      says `# validate: only files mounted ... are missing here` is checked with --offline)
#   7. what the values must render: probes, drain flags, mounts, update strategy, trace
#      attributes, the helm test Pod (typed by hand below; an empty render fails)
#   8. the generated parts are current: the configuration schema in values.schema.json and
#      the README's values table (`make chart-docs` regenerates them)
# Tools are built once into ${GATEHOUSE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/gatehouse-tools}/bin.
# Prints `chart: N passed, M failed` and exits non-zero when anything failed.
set -uo pipefail

HELM_VERSION=v3.22.0
KUBECTL_VALIDATE_VERSION=v0.0.4
KUBE_VERSION=1.30
RELEASE=gatehouse
NAMESPACE=gatehouse

root=$(cd "$(dirname "$0")/.." && pwd)
chart=$root/k8s/gatehouse
tests=$root/k8s/tests
tools=${GATEHOUSE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/gatehouse-tools}
bin=$tools/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
fail() {
	failed=$((failed + 1))
	printf 'FAIL  %s\n' "$1"
	[ -n "${2:-}" ] && [ -s "$2" ] && sed 's/^/      /' "$2"
	return 0
}

# tool NAME MODULE@VERSION: build NAME into $bin unless that version is already there.
tool() {
	local name=$1 pkg=$2 stamp=$bin/.$1.version
	if [ -x "$bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$pkg" ]; then
		return 0
	fi
	echo "building $pkg into $bin (once)..."
	mkdir -p "$bin"
	if GOBIN=$bin GOFLAGS=-mod=mod go install "$pkg"; then
		echo "$pkg" >"$stamp"
	else
		echo "chart-test: could not build $pkg" >&2
		exit 1
	fi
}
tool helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
tool kubectl-validate "sigs.k8s.io/kubectl-validate@$KUBECTL_VALIDATE_VERSION"
helm=$bin/helm
kv=$bin/kubectl-validate
export HELM_CACHE_HOME=$work/helm-cache HELM_CONFIG_HOME=$work/helm-config HELM_DATA_HOME=$work/helm-data

render() { # render OUT [helm template args...]; an empty render is a failure
	local out=$1
	shift
	"$helm" template "$RELEASE" "$chart" --namespace "$NAMESPACE" --kube-version "$KUBE_VERSION.0" "$@" >"$out" 2>"$out.err" || return 1
	if [ ! -s "$out" ] || ! grep -q '^kind:' "$out"; then
		echo "helm template rendered no object" >>"$out.err"
		return 1
	fi
}

# kinds FILE: the rendered kinds with their counts, sorted ("ConfigMap=1 Deployment=1 ...").
kinds() {
	grep '^kind:' "$1" | awk '{print $2}' | sort | uniq -c | awk '{printf "%s%s=%s", (NR > 1 ? " " : ""), $2, $1}'
}

# What each CI values file must render (with the ServiceMonitor API available), typed by
# hand from the values: a check that renders something else, or nothing, fails.
declare -A want_kinds=(
	[defaults]="ConfigMap=1 Deployment=1 Pod=1 Service=2 ServiceAccount=1"
	[existing-secrets]="Deployment=1 Service=2 ServiceAccount=1"
	[extras]="ConfigMap=1 Deployment=1 Pod=1 Service=2 ServiceAccount=1"
	[hpa-pdb]="ConfigMap=1 Deployment=1 HorizontalPodAutoscaler=1 Pod=1 PodDisruptionBudget=1 Service=2 ServiceAccount=1"
	[memory-pvc]="ConfigMap=1 Deployment=1 Pod=1 Service=2 ServiceAccount=1"
	[memory-replicas]="ConfigMap=1 Deployment=1 Pod=1 PodDisruptionBudget=1 Service=2 ServiceAccount=1"
	[monitoring]="ConfigMap=2 Deployment=1 Pod=1 PrometheusRule=1 Service=2 ServiceAccount=1 ServiceMonitor=1"
	[redis]="ConfigMap=1 Deployment=1 Pod=1 PodDisruptionBudget=1 Service=2 ServiceAccount=1"
	[servicemonitor]="ConfigMap=1 Deployment=1 NetworkPolicy=1 Pod=1 Service=2 ServiceAccount=1 ServiceMonitor=1"
	[sidecar]="ConfigMap=1 Deployment=1 NetworkPolicy=1 Pod=1 Service=1 ServiceAccount=1"
)

# 1-2. lint, render and validate every CI values file.
for values in "$chart"/ci/*-values.yaml; do
	name=$(basename "$values" -values.yaml)
	if "$helm" lint --strict "$chart" --kube-version "$KUBE_VERSION.0" -f "$values" >"$work/lint.out" 2>&1; then
		pass "lint $name"
	else
		fail "lint $name" "$work/lint.out"
	fi
	out=$work/render-$name.yaml
	if ! render "$out" -f "$values" --api-versions monitoring.coreos.com/v1/ServiceMonitor --api-versions monitoring.coreos.com/v1/PrometheusRule; then
		fail "template $name" "$out.err"
		continue
	fi
	pass "template $name"
	got=$(kinds "$out")
	if [ "$got" = "${want_kinds[$name]:-}" ]; then
		pass "kinds $name ($got)"
	else
		echo "rendered: $got; want: ${want_kinds[$name]:-(no expectation for $name in want_kinds)}" >"$work/kinds.err"
		fail "kinds $name" "$work/kinds.err"
	fi
	if "$kv" --version "$KUBE_VERSION" --local-crds "$tests/crds" "$out" >"$work/kv.out" 2>&1; then
		pass "kubectl-validate $name ($(grep -c '^kind:' "$out") objects)"
	else
		fail "kubectl-validate $name" "$work/kv.out"
	fi
done

# 3. No ServiceMonitor without the Prometheus Operator API: everything else of the
# servicemonitor values (which render one with the API, checked above), and no more.
if ! render "$work/nosm.yaml" -f "$chart/ci/servicemonitor-values.yaml"; then
	fail "servicemonitor skipped without monitoring.coreos.com/v1" "$work/nosm.yaml.err"
elif [ "$(kinds "$work/nosm.yaml")" = "${want_kinds[servicemonitor]% ServiceMonitor=1}" ]; then
	pass "servicemonitor skipped without monitoring.coreos.com/v1"
else
	echo "rendered: $(kinds "$work/nosm.yaml")" >"$work/nosm.err"
	fail "servicemonitor skipped without monitoring.coreos.com/v1" "$work/nosm.err"
fi

# 3b. No PrometheusRule without its API; the alerts the values leave out are left out.
if ! render "$work/norule.yaml" -f "$chart/ci/monitoring-values.yaml" --api-versions monitoring.coreos.com/v1/ServiceMonitor; then
	fail "prometheusrule skipped without its API" "$work/norule.yaml.err"
elif [ "$(kinds "$work/norule.yaml")" = "${want_kinds[monitoring]/ PrometheusRule=1/}" ]; then
	pass "prometheusrule skipped without its API"
else
	echo "rendered: $(kinds "$work/norule.yaml")" >"$work/norule.err"
	fail "prometheusrule skipped without its API" "$work/norule.err"
fi
rules=$(grep -c '^ *- alert: Gatehouse' "$work/render-monitoring.yaml" 2>/dev/null)
if [ "$rules" = 5 ] && ! grep -q 'alert: GatehouseJWKSFetchFailing' "$work/render-monitoring.yaml"; then
	pass "prometheusrule: 5 alerts, the disabled one left out"
else
	echo "alerts rendered: ${rules:-none}; want 5, without GatehouseJWKSFetchFailing" >"$work/rules.err"
	fail "prometheusrule: 5 alerts, the disabled one left out" "$work/rules.err"
fi

# 3c. The dashboard ConfigMap holds the dashboard file byte for byte, labelled for the sidecar.
if ! render "$work/dash.yaml" -f "$chart/ci/monitoring-values.yaml" --show-only templates/dashboard.yaml; then
	fail "dashboard configmap" "$work/dash.yaml.err"
else
	sed -n '/^  gatehouse.json: |-$/,$p' "$work/dash.yaml" | tail -n +2 | sed 's/^    //' >"$work/dash.json"
	if ! grep -q '^    grafana_dashboard: "1"$' "$work/dash.yaml"; then
		echo "no grafana_dashboard: \"1\" label" >"$work/dash.err"
		fail "dashboard configmap" "$work/dash.err"
	# The block scalar (|-) drops the file's final newline: compare without it.
	elif diff <(printf '%s\n' "$(cat "$chart/dashboards/gatehouse.json")") <(printf '%s\n' "$(cat "$work/dash.json")") >"$work/dash.err" 2>&1; then
		pass "dashboard configmap (label, dashboard unchanged)"
	else
		fail "dashboard configmap" "$work/dash.err"
	fi
fi

# 4. Values the chart must refuse, each with its message.
negatives=("$tests"/negative/*.yaml)
if [ ! -e "${negatives[0]}" ]; then
	echo "no negative cases in $tests/negative" >"$work/neg.err"
	fail "negative cases present" "$work/neg.err"
fi
for values in "${negatives[@]}"; do
	[ -e "$values" ] || continue
	name=$(basename "$values" .yaml)
	expect=$(sed -n 's/^# expect: //p' "$values" | head -n 1)
	if [ -z "$expect" ]; then
		echo "no '# expect:' line" >"$work/neg.err"
		fail "reject $name" "$work/neg.err"
	elif render "$work/neg.yaml" -f "$values"; then
		echo "helm template succeeded; expected: $expect" >"$work/neg.err"
		fail "reject $name" "$work/neg.err"
	elif grep -qF -- "$expect" "$work/neg.yaml.err"; then
		pass "reject $name"
	else
		{ echo "expected: $expect"; echo "got:"; cat "$work/neg.yaml.err"; } >"$work/neg.err"
		fail "reject $name" "$work/neg.err"
	fi
done

# 5. Golden snapshot of the default render.
golden=$tests/golden/default.yaml
if ! render "$work/default.yaml"; then
	fail "golden default" "$work/default.yaml.err"
elif [ "${UPDATE_GOLDEN:-}" = 1 ]; then
	cp "$work/default.yaml" "$golden"
	pass "golden default (updated $golden)"
elif ! grep -q '^kind:' "$golden"; then
	echo "the golden file $golden holds no object" >"$work/golden.diff"
	fail "golden default" "$work/golden.diff"
elif diff -u "$golden" "$work/default.yaml" >"$work/golden.diff" 2>&1; then
	pass "golden default"
else
	echo "render differs from the golden file; if intended: UPDATE_GOLDEN=1 scripts/chart-test.sh" >>"$work/golden.diff"
	fail "golden default" "$work/golden.diff"
fi

# 6. The configuration each CI values file renders is one Gatehouse accepts.
if ! (cd "$root" && go build -o "$work/gatehouse" ./cmd/gatehouse) >"$work/build.out" 2>&1; then
	fail "gatehouse validate (build)" "$work/build.out"
else
	for values in "$chart"/ci/*-values.yaml; do
		name=$(basename "$values" -values.yaml)
		# Whether a ConfigMap is rendered is part of want_kinds; a values file without one
		# must say why (existingConfigMap). "could not find template" is only accepted then,
		# never as a pass by itself (a renamed template would make every case pass).
		if [ ! -f "$chart/templates/configmap.yaml" ]; then
			echo "templates/configmap.yaml does not exist" >"$work/cm.err"
			fail "gatehouse validate $name config" "$work/cm.err"
			continue
		fi
		if [[ " ${want_kinds[$name]:-} " != *" ConfigMap="[1-9]" "* ]]; then
			if grep -q '^existingConfigMap: *[^ ]' "$values" && ! render "$work/cm.yaml" -f "$values" --show-only templates/configmap.yaml &&
				grep -q "could not find template" "$work/cm.yaml.err"; then
				pass "gatehouse validate $name config (no ConfigMap: existingConfigMap)"
			else
				echo "no ConfigMap expected, but the values set no existingConfigMap or one was rendered" >"$work/cm.err"
				fail "gatehouse validate $name config" "$work/cm.err"
			fi
			continue
		fi
		if ! render "$work/cm.yaml" -f "$values" --show-only templates/configmap.yaml; then
			fail "gatehouse validate $name config" "$work/cm.yaml.err"
			continue
		fi
		# The ConfigMap's only key is config.yaml, a block scalar indented by four spaces.
		sed -n '/^  config.yaml: |/,$p' "$work/cm.yaml" | tail -n +2 | sed 's/^    //' >"$work/config.yaml"
		if ! grep -q '^apps:' "$work/config.yaml"; then
			{ echo "no configuration with apps extracted from the ConfigMap:"; cat "$work/cm.yaml"; } >"$work/cm.err"
			fail "gatehouse validate $name config" "$work/cm.err"
		elif "$work/gatehouse" validate --config "$work/config.yaml" >"$work/validate.out" 2>&1; then
			pass "gatehouse validate $name config"
		elif grep -q '^# validate: only files mounted from Secrets and ConfigMaps are missing here' "$values" &&
			"$work/gatehouse" validate --offline --config "$work/config.yaml" >"$work/validate.out" 2>&1; then
			pass "gatehouse validate --offline $name config (files mounted from Secrets and ConfigMaps are absent here)"
		else
			fail "gatehouse validate $name config" "$work/validate.out"
		fi
	done
fi

# 7. What the values must render. Each check reads the render of step 2.
# has NAME FILE LINE...: every LINE appears in FILE, leading spaces ignored.
has() {
	local name=$1 file=$2 want missing=()
	shift 2
	sed 's/^ *//' "$file" >"$work/has.trim"
	for want in "$@"; do
		grep -qxF -- "$want" "$work/has.trim" || missing+=("$want")
	done
	if [ ! -s "$file" ]; then
		echo "no render: $file" >"$work/has.err"
		fail "$name" "$work/has.err"
	elif [ ${#missing[@]} -eq 0 ]; then
		pass "$name"
	else
		printf 'missing: %s\n' "${missing[@]}" >"$work/has.err"
		fail "$name" "$work/has.err"
	fi
}
# lacks NAME FILE REGEX: no line of a non-empty FILE, comments aside, matches REGEX.
lacks() {
	if [ ! -s "$2" ]; then
		echo "no render: $2" >"$work/lacks.err"
		fail "$1" "$work/lacks.err"
	elif grep -vE '^ *#' "$2" | grep -E -- "$3" >"$work/lacks.err"; then
		fail "$1" "$work/lacks.err"
	else
		pass "$1"
	fi
}
# after FILE ANCHOR FIELD: the value of the first `FIELD:` line after the line `ANCHOR:`.
after() { awk -v a="$2:" -v f="$3:" '{ sub(/^ */, "") } $0 == a { on = 1; next } on && $1 == f { print $2; exit }' "$1"; }
r=$work/render
for values in "$chart"/ci/*-values.yaml; do
	name=$(basename "$values" -values.yaml)
	got="startup $(after "$r-$name.yaml" startupProbe path), liveness $(after "$r-$name.yaml" livenessProbe path), readiness $(after "$r-$name.yaml" readinessProbe path)"
	if [ "$got" = "startup /healthz, liveness /healthz, readiness /readyz" ]; then
		pass "probes $name: $got"
	else
		echo "got: $got" >"$work/probes.err"
		fail "probes $name" "$work/probes.err"
	fi
	lacks "no subPath mount $name" "$r-$name.yaml" 'subPath'
	# Every Secret volume is readable by the pod's group only (the kubelet's default, 0644,
	# lets any user of any container in the pod read keys and tokens).
	if awk '
		/^ *secret:$/ { if (open) bad++; open = 1; depth = match($0, /[^ ]/); next }
		open && match($0, /[^ ]/) <= depth { bad++; open = 0 }
		open && /^ *defaultMode: 0440$/ { open = 0 }
		END { if (open) bad++; exit bad > 0 }' "$r-$name.yaml"; then
		pass "secret volumes 0440 $name"
	else
		grep -n -A6 '^ *secret:$' "$r-$name.yaml" >"$work/mode.err"
		fail "secret volumes 0440 $name (defaultMode)" "$work/mode.err"
	fi
done
d=$r-defaults.yaml
has "defaults: drain flags" "$d" "- --drain-delay=5s" "- --drain-timeout=15s" "terminationGracePeriodSeconds: 25"
lacks "defaults: no preStop sleep on Gatehouse" "$d" 'preStop'
lacks "defaults: rolling update" "$d" 'type: Recreate'
has "defaults: downward API trace attributes" "$d" "- name: POD_NAME" "fieldPath: metadata.name" "- name: POD_NAMESPACE" \
	"fieldPath: metadata.namespace" "- name: POD_UID" "fieldPath: metadata.uid" \
	'value: "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),service.instance.id=$(POD_UID)"'
# Kubernetes expands $(VAR) only from variables defined earlier in the list.
if [ "$(grep -n -- '- name: POD_UID' "$d" | cut -d: -f1)" -lt "$(grep -n -- '- name: OTEL_RESOURCE_ATTRIBUTES' "$d" | cut -d: -f1 || echo 0)" ] 2>/dev/null; then
	pass "defaults: POD_* before OTEL_RESOURCE_ATTRIBUTES"
else
	fail "defaults: POD_* before OTEL_RESOURCE_ATTRIBUTES"
fi
has "defaults: helm test Pod" "$d" "helm.sh/hook: test" "- probe" "- --admin=http://gatehouse.gatehouse.svc:9192" \
	"- --addr=gatehouse.gatehouse.svc:9191" "- --check-path=/gatehouse-helm-test" "app.kubernetes.io/name: gatehouse-test"
has "existing-secrets: user trace attributes appended" "$r-existing-secrets.yaml" \
	'value: "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),service.instance.id=$(POD_UID),deployment.environment=prod"'
has "memory-pvc: Recreate (one writer of the state file)" "$r-memory-pvc.yaml" "type: Recreate" "claimName: gatehouse-data"
lacks "memory-replicas: no Recreate without a claim" "$r-memory-replicas.yaml" 'type: Recreate'
has "memory-replicas: a percentage budget that allows one eviction" "$r-memory-replicas.yaml" "minAvailable: 50%"
has "sidecar: no drain delay after Envoy, Envoy keeps its preStop" "$r-sidecar.yaml" "- --drain-delay=0s" "preStop:" "seconds: 5"
x=$r-extras.yaml
has "extras: secrets as flags" "$x" "- --admin-token-file=/etc/gatehouse/admin-token/token" \
	"- --device-hash-key-file=/etc/gatehouse/device-hash-key/key" "- --pprof"
has "extras: secret and file mounts (directories)" "$x" "mountPath: /etc/gatehouse/admin-token" "secretName: gatehouse-admin" \
	"mountPath: /etc/gatehouse/device-hash-key" "secretName: gatehouse-device-hash" "- key: hmac" \
	"mountPath: /etc/gatehouse/tls" "secretName: gatehouse-tls" "mountPath: /etc/gatehouse/client-ca" "secretName: gatehouse-client-ca" \
	"mountPath: /etc/gatehouse/extra/ratelimit" "name: gatehouse-ratelimit" "mountPath: /etc/gatehouse/extra/lists" "secretName: gatehouse-lists"
has "extras: server.tls filled in, the user's allow list kept" "$x" "cert_file: /etc/gatehouse/tls/tls.crt" \
	"key_file: /etc/gatehouse/tls/tls.key" "client_ca_file: /etc/gatehouse/client-ca/ca.crt" "require_client_cert: true" \
	"- spiffe://cluster.local/ns/gw/sa/envoy"
has "extras: pod extension points" "$x" "envFrom:" "name: gatehouse-env" "- name: GODEBUG" "- mountPath: /scratch" \
	"name: fetch-lists" "example.com/team: edge" "initContainers:"
has "extras: helm test over mutual TLS" "$x" "- --tls" "- --ca-file=/etc/gatehouse/probe-tls/ca.crt" \
	"- --cert-file=/etc/gatehouse/probe-tls/tls.crt" "secretName: gatehouse-test-client"

# 8. Generated parts are current.
if (cd "$root" && go run ./internal/chartgen -check -chart k8s/gatehouse) >"$work/gen.out" 2>&1; then
	pass "generated config schema and README values table are current"
else
	fail "generated config schema and README values table are current (make chart-docs)" "$work/gen.out"
fi

echo "chart: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
