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
{{- toYaml $cfg }}
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
{{- if lt (int .Values.terminationGracePeriodSeconds) (add (int .Values.preStopSleepSeconds) 15) }}
{{- fail (printf "terminationGracePeriodSeconds must be at least preStopSleepSeconds + 15 (Gatehouse's drain deadline): %d < %d." (int .Values.terminationGracePeriodSeconds) (add (int .Values.preStopSleepSeconds) 15)) }}
{{- end }}
{{- end }}

{{/* OTEL_* environment. */}}
{{- define "gatehouse.otelEnv" -}}
{{- $o := .Values.otel }}
{{- $env := dict "OTEL_SERVICE_NAME" $o.serviceName "OTEL_TRACES_EXPORTER" $o.tracesExporter "OTEL_EXPORTER_OTLP_ENDPOINT" $o.exporterOtlpEndpoint "OTEL_EXPORTER_OTLP_PROTOCOL" $o.exporterOtlpProtocol "OTEL_TRACES_SAMPLER" $o.tracesSampler "OTEL_TRACES_SAMPLER_ARG" $o.tracesSamplerArg "OTEL_RESOURCE_ATTRIBUTES" $o.resourceAttributes }}
{{- $env = merge (deepCopy $o.extraEnv) $env }}
{{- range $k := keys $env | sortAlpha }}
{{- $v := get $env $k }}
{{- if $v }}
- name: {{ $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end }}
{{- end }}
