{{/* Chart name. */}}
{{- define "gatehouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name when it already contains the chart name. */}}
{{- define "gatehouse.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gatehouse.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "gatehouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatehouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of the helm test Pod: never the Deployment's selector labels. */}}
{{- define "gatehouse.testLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "gatehouse.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "gatehouse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gatehouse.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository@digest, or repository:tag. */}}
{{- define "gatehouse.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) }}
{{- end }}
{{- end }}

{{- define "gatehouse.configMapName" -}}
{{- default (include "gatehouse.fullname" .) .Values.existingConfigMap }}
{{- end }}

{{/* The Gatehouse configuration the chart renders: `config`, plus the store when not memory. */}}
{{- define "gatehouse.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- if eq .Values.store.type "redis" }}
{{- $r := .Values.store.redis }}
{{- $redis := dict "addrs" $r.addresses "mode" $r.mode "tls" (dict "enabled" $r.tls.enabled "server_name" $r.tls.serverName) }}
{{- if $r.masterName }}{{- $_ := set $redis "master_name" $r.masterName }}{{- end }}
{{- if $r.db }}{{- $_ := set $redis "db" $r.db }}{{- end }}
{{- if $r.passwordKey }}{{- $_ := set $redis "password_file" (printf "/etc/gatehouse/secrets/%s" $r.passwordKey) }}{{- end }}
{{- /* Other Redis settings (timeout, counters, breaker, key_prefix, …) come from config.store.redis; the connection above wins. */}}
{{- $own := dict }}
{{- if and (hasKey $cfg "store") (kindIs "map" $cfg.store) (hasKey $cfg.store "redis") }}{{- $own = deepCopy $cfg.store.redis }}{{- end }}
{{- $_ := set $cfg "store" (dict "type" "redis" "redis" (mergeOverwrite $own $redis)) }}
{{- else if and .Values.store.memory.file (not (hasKey $cfg "store")) }}
{{- $_ := set $cfg "store" (dict "type" "memory" "memory" (dict "file" .Values.store.memory.file)) }}
{{- end }}
{{- include "gatehouse.configTLS" (dict "cfg" $cfg "tls" .Values.tls) }}
{{- toYaml $cfg }}
{{- end }}

{{/* server.tls from the tls values: the mounted files, unless `config` names its own. */}}
{{- define "gatehouse.configTLS" -}}
{{- if .tls.existingSecret }}
{{- if not (kindIs "map" .cfg.server) }}{{- $_ := set .cfg "server" dict }}{{- end }}
{{- $t := dict }}
{{- if kindIs "map" .cfg.server.tls }}{{- $t = .cfg.server.tls }}{{- end }}
{{- $own := dict "cert_file" "/etc/gatehouse/tls/tls.crt" "key_file" "/etc/gatehouse/tls/tls.key" }}
{{- if .tls.clientCA.existingSecret }}
{{- $_ := set $own "client_ca_file" "/etc/gatehouse/client-ca/ca.crt" }}
{{- $_ := set $own "require_client_cert" true }}
{{- end }}
{{- $_ := set .cfg.server "tls" (merge $t $own) }}
{{- end }}
{{- end }}

{{/*
Deployment strategy: the user's, else Recreate when the memory store's file is on a claim
(during a rolling update the old and the new pod would both write it; the old one's last
flush on shutdown would overwrite what the new one counted), else the default.
*/}}
{{- define "gatehouse.strategy" -}}
{{- if .Values.updateStrategy }}
{{- toYaml .Values.updateStrategy }}
{{- else if include "gatehouse.stateOnClaim" . }}
type: Recreate
{{- end }}
{{- end }}

{{/* Non-empty when the memory store persists its file on a PersistentVolumeClaim. */}}
{{- define "gatehouse.stateOnClaim" -}}
{{- if and (eq .Values.store.type "memory") .Values.store.memory.existingClaim .Values.store.memory.file }}true{{- end }}
{{- end }}

{{/* Volume mounts of the first-class secrets and the extra configuration files. */}}
{{- define "gatehouse.secretMounts" -}}
{{- range $v := include "gatehouse.secretDirs" . | fromYamlArray }}
- name: {{ $v.volume }}
  mountPath: {{ $v.path }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Volumes of the first-class secrets and the extra configuration files. */}}
{{/*
Mode of the files of a Secret volume: the pod's group only (fsGroup) reads them, not every
user of every container in the pod, as the kubelet's default 0644 would let. Without an
fsGroup the files stay root's group, so Gatehouse's user needs them world-readable (0444).
*/}}
{{- define "gatehouse.secretMode" -}}
{{- if (.Values.podSecurityContext).fsGroup }}0440{{ else }}0444{{ end }}
{{- end }}

{{- define "gatehouse.secretVolumes" -}}
{{- range $v := include "gatehouse.secretDirs" . | fromYamlArray }}
- name: {{ $v.volume }}
  {{- if $v.configMap }}
  configMap:
    name: {{ $v.configMap }}
  {{- else }}
  secret:
    secretName: {{ $v.secret }}
    defaultMode: {{ include "gatehouse.secretMode" $ }}
    {{- with $v.items }}
    items:
      {{- toYaml . | nindent 6 }}
    {{- end }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
Every directory the chart mounts from a first-class Secret or an extra ConfigMap/Secret:
volume name, mount path, source, and the items that give a Secret key a fixed file name.
Directories, never subPath: the kubelet's symlink swap then reaches Gatehouse.
*/}}
{{- define "gatehouse.secretDirs" -}}
{{- $dirs := list }}
{{- with .Values.adminToken.existingSecret }}
{{- $dirs = append $dirs (dict "volume" "admin-token" "path" "/etc/gatehouse/admin-token" "secret" . "items" (list (dict "key" $.Values.adminToken.key "path" "token"))) }}
{{- end }}
{{- with .Values.deviceHashKey.existingSecret }}
{{- $dirs = append $dirs (dict "volume" "device-hash-key" "path" "/etc/gatehouse/device-hash-key" "secret" . "items" (list (dict "key" $.Values.deviceHashKey.key "path" "key"))) }}
{{- end }}
{{- with .Values.tls.existingSecret }}
{{- $dirs = append $dirs (dict "volume" "tls" "path" "/etc/gatehouse/tls" "secret" . "items" (list (dict "key" "tls.crt" "path" "tls.crt") (dict "key" "tls.key" "path" "tls.key"))) }}
{{- end }}
{{- with .Values.tls.clientCA.existingSecret }}
{{- $dirs = append $dirs (dict "volume" "client-ca" "path" "/etc/gatehouse/client-ca" "secret" . "items" (list (dict "key" $.Values.tls.clientCA.key "path" "ca.crt"))) }}
{{- end }}
{{- range .Values.extraConfigFiles }}
{{- $d := dict "volume" (printf "extra-%s" .name) "path" (printf "/etc/gatehouse/extra/%s" .name) }}
{{- if .configMap }}{{- $_ := set $d "configMap" .configMap }}{{- else }}{{- $_ := set $d "secret" .secret }}{{- end }}
{{- $dirs = append $dirs $d }}
{{- end }}
{{- toYaml $dirs }}
{{- end }}

{{/*
Checks values the schema cannot express, with a message that says what to do.
*/}}
{{- define "gatehouse.validate" -}}
{{- $replicas := int .Values.replicaCount }}
{{- if .Values.autoscaling.enabled }}{{- $replicas = int .Values.autoscaling.maxReplicas }}{{- end }}
{{- if and (eq .Values.store.type "memory") (gt $replicas 1) (not .Values.store.acceptPerReplicaLimits) }}
{{- fail (printf "store.type=memory with %d replicas: every replica would count limits on its own. Use store.type=redis, or set store.acceptPerReplicaLimits=true to accept per-replica limits." $replicas) }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (ne .Values.mode "sidecar") (not .Values.networkPolicy.envoyPeers) }}
{{- fail "networkPolicy.enabled without networkPolicy.envoyPeers: no Envoy could reach the gRPC port, and every request through the gateway would fail. List the Envoy pods (NetworkPolicyPeer objects) in networkPolicy.envoyPeers." }}
{{- end }}
{{- if and (eq .Values.store.type "redis") (not .Values.store.redis.addresses) }}
{{- fail "store.type=redis needs store.redis.addresses (host:port)." }}
{{- end }}
{{- if and (eq .Values.store.redis.mode "sentinel") (eq .Values.store.type "redis") (not .Values.store.redis.masterName) }}
{{- fail "store.redis.mode=sentinel needs store.redis.masterName." }}
{{- end }}
{{- if and .Values.store.redis.passwordKey (not .Values.existingSecret) }}
{{- fail "store.redis.passwordKey names a key of existingSecret: set existingSecret (the Redis password is only read from a Secret)." }}
{{- end }}
{{- if and (eq .Values.mode "sidecar") (not .Values.sidecar.envoy.existingConfigMap) }}
{{- fail "mode=sidecar needs sidecar.envoy.existingConfigMap: a ConfigMap with the Envoy bootstrap under key envoy.yaml (start from envoy/sidecar/envoy-uds.yaml)." }}
{{- end }}
{{- include "gatehouse.validateGrace" . }}
{{- include "gatehouse.validatePDB" . }}
{{- include "gatehouse.validateState" . }}
{{- if and .Values.tls.clientCA.existingSecret (not .Values.tls.existingSecret) }}
{{- fail "tls.clientCA.existingSecret needs tls.existingSecret: client certificates are only asked for over TLS." }}
{{- end }}
{{- /* Flags the chart sets from values (and checks, like the drain against the grace period) cannot be overridden behind its back. */}}
{{- range .Values.extraArgs }}
{{- $flag := regexReplaceAll "^--?([^=]*).*$" . "${1}" }}
{{- if has $flag (list "config" "grpc-addr" "admin-addr" "drain-delay" "drain-timeout" "admin-token-file" "device-hash-key-file") }}
{{- fail (printf "extraArgs sets --%s, which the chart sets from its values (see values.yaml: drain, adminToken, deviceHashKey, ports, existingConfigMap)." $flag) }}
{{- end }}
{{- end }}
{{- $seen := dict }}
{{- range .Values.extraConfigFiles }}
{{- if hasKey $seen .name }}
{{- fail (printf "extraConfigFiles: the name %q is used twice (each is a directory /etc/gatehouse/extra/<name>)." .name) }}
{{- end }}
{{- $_ := set $seen .name true }}
{{- end }}
{{- range .Values.extraEnv }}
{{- if eq .name "OTEL_RESOURCE_ATTRIBUTES" }}
{{- fail "extraEnv sets OTEL_RESOURCE_ATTRIBUTES, which the chart builds from the pod's identity: put your attributes in otel.resourceAttributes (they are appended)." }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The grace period covers the drain: the NOT_SERVING delay, the drain deadline and a 5 s
margin; in sidecar mode Envoy's preStop sleep takes the delay's place (Gatehouse is stopped
after Envoy, with no delay).
*/}}
{{- define "gatehouse.validateGrace" -}}
{{- $need := add (int .Values.drain.delaySeconds) (int .Values.drain.timeoutSeconds) 5 }}
{{- $what := "drain.delaySeconds + drain.timeoutSeconds + 5" }}
{{- if eq .Values.mode "sidecar" }}
{{- $need = add (int .Values.sidecar.envoy.preStopSleepSeconds) (int .Values.drain.timeoutSeconds) 5 }}
{{- $what = "sidecar.envoy.preStopSleepSeconds + drain.timeoutSeconds + 5" }}
{{- end }}
{{- if lt (int .Values.terminationGracePeriodSeconds) (int $need) }}
{{- fail (printf "terminationGracePeriodSeconds must be at least %s: %d < %d (the kubelet would kill Gatehouse mid-drain)." $what (int .Values.terminationGracePeriodSeconds) (int $need)) }}
{{- end }}
{{- end }}

{{/*
A PodDisruptionBudget that no eviction can ever satisfy blocks node drains forever: refuse
minAvailable ≥ the replicas (autoscaling.minReplicas with an HPA: the HPA may sit there),
minAvailable 100%, and maxUnavailable 0 or 0%.
*/}}
{{- define "gatehouse.validatePDB" -}}
{{- $p := .Values.podDisruptionBudget }}
{{- if $p.enabled }}
{{- $replicas := int .Values.replicaCount }}
{{- $from := "replicaCount" }}
{{- if .Values.autoscaling.enabled }}{{- $replicas = int .Values.autoscaling.minReplicas }}{{- $from = "autoscaling.minReplicas" }}{{- end }}
{{- if not (kindIs "invalid" $p.maxUnavailable) }}
{{- if has (toString $p.maxUnavailable) (list "0" "0%") }}
{{- fail "podDisruptionBudget.maxUnavailable is 0: no pod could ever be evicted (node drains would hang). Use at least 1." }}
{{- end }}
{{- else if kindIs "string" $p.minAvailable }}
{{- /* A percentage is rounded up, as Kubernetes does: 50% of 1 replica is 1. */}}
{{- $pct := int (trimSuffix "%" $p.minAvailable) }}
{{- if ge (div (add (mul $pct $replicas) 99) 100) $replicas }}
{{- fail (printf "podDisruptionBudget.minAvailable %s of %s (%d) rounds up to every pod: no pod could ever be evicted (node drains would hang)." $p.minAvailable $from $replicas) }}
{{- end }}
{{- else if ge (int $p.minAvailable) $replicas }}
{{- fail (printf "podDisruptionBudget.minAvailable (%d) must be less than %s (%d): otherwise no pod could ever be evicted (node drains would hang)." (int $p.minAvailable) $from $replicas) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The memory store's state file on a claim: one writer only. */}}
{{- define "gatehouse.validateState" -}}
{{- if include "gatehouse.stateOnClaim" . }}
{{- $replicas := int .Values.replicaCount }}
{{- if .Values.autoscaling.enabled }}{{- $replicas = int .Values.autoscaling.maxReplicas }}{{- end }}
{{- if gt $replicas 1 }}
{{- fail (printf "store.memory.existingClaim with %d replicas: every replica would write the same state file. Use one replica, or store.type=redis." $replicas) }}
{{- end }}
{{- if and .Values.updateStrategy (ne (toString .Values.updateStrategy.type) "Recreate") }}
{{- fail "updateStrategy must be Recreate while store.memory.existingClaim holds the state file: during a rolling update two pods would write it." }}
{{- end }}
{{- end }}
{{- end }}

{{/* Seconds of --drain-delay: none for a sidecar, stopped after Envoy, its only client, has exited. */}}
{{- define "gatehouse.drainDelay" -}}
{{- if eq .Values.mode "sidecar" }}0{{ else }}{{ int .Values.drain.delaySeconds }}{{ end }}
{{- end }}

{{/* OTEL_* environment. */}}
{{- define "gatehouse.otelEnv" -}}
{{- $o := .Values.otel }}
{{- /* The pod's own attributes first; the user's (otel.resourceAttributes, or
OTEL_RESOURCE_ATTRIBUTES in otel.extraEnv) after them, so that a key given twice takes the user's value. */}}
{{- $attrs := list "k8s.pod.name=$(POD_NAME)" "k8s.namespace.name=$(POD_NAMESPACE)" "service.instance.id=$(POD_UID)" }}
{{- with $o.resourceAttributes }}{{- $attrs = append $attrs . }}{{- end }}
{{- with get $o.extraEnv "OTEL_RESOURCE_ATTRIBUTES" }}{{- $attrs = append $attrs . }}{{- end }}
{{- $env := dict "OTEL_SERVICE_NAME" $o.serviceName "OTEL_TRACES_EXPORTER" $o.tracesExporter "OTEL_EXPORTER_OTLP_ENDPOINT" $o.exporterOtlpEndpoint "OTEL_EXPORTER_OTLP_PROTOCOL" $o.exporterOtlpProtocol "OTEL_TRACES_SAMPLER" $o.tracesSampler "OTEL_TRACES_SAMPLER_ARG" $o.tracesSamplerArg }}
{{- $env = merge (omit (deepCopy $o.extraEnv) "OTEL_RESOURCE_ATTRIBUTES") $env }}
{{- $_ := set $env "OTEL_RESOURCE_ATTRIBUTES" (join "," $attrs) }}
{{- range $k := keys $env | sortAlpha }}
{{- $v := get $env $k }}
{{- if $v }}
- name: {{ $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end }}
{{- end }}
