{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "stockd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart> unless the release name already contains the
chart name, truncated to 63 characters.
*/}}
{{- define "stockd.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "stockd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource, without app.kubernetes.io/component.
*/}}
{{- define "stockd.commonLabels" -}}
helm.sh/chart: {{ include "stockd.chart" . }}
app.kubernetes.io/name: {{ include "stockd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stockd
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels of the server's resources (Deployment, pods, Service, ...).
*/}}
{{- define "stockd.labels" -}}
{{ include "stockd.commonLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{/*
Selector labels of the stockd pods (never change them: Deployment selectors
are immutable).
*/}}
{{- define "stockd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stockd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/*
Name of the ServiceAccount of the stockd pods.
*/}}
{{- define "stockd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stockd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
ServiceAccount of the migration Job. A pre-install hook runs before the chart's
own ServiceAccount exists, so a chart-created one cannot be used there.
*/}}
{{- define "stockd.migrationServiceAccountName" -}}
{{- if .Values.migration.serviceAccountName }}
{{- .Values.migration.serviceAccountName }}
{{- else if .Values.serviceAccount.create }}
{{- "default" }}
{{- else }}
{{- include "stockd.serviceAccountName" . }}
{{- end }}
{{- end }}

{{/*
Image reference: repository@digest, else repository:tag (tag defaults to the
chart's appVersion).
*/}}
{{- define "stockd.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
host:port for a listen address; IPv6 hosts are bracketed.
Usage: include "stockd.listenAddr" (list .Values.listenAddress 50051)
*/}}
{{- define "stockd.listenAddr" -}}
{{- $host := index . 0 | toString }}
{{- $port := index . 1 | toString }}
{{- if and (contains ":" $host) (not (hasPrefix "[" $host)) }}
{{- printf "[%s]:%s" $host $port }}
{{- else }}
{{- printf "%s:%s" $host $port }}
{{- end }}
{{- end }}

{{/*
A stockd duration ("250ms", "30s", "30m", "24h" or bare seconds) in whole
seconds, rounded up. Fails on anything else.
*/}}
{{- define "stockd.durationSeconds" -}}
{{- $v := toString . | trim }}
{{- if regexMatch "^[0-9]+ms$" $v }}
{{- $ms := trimSuffix "ms" $v | atoi }}
{{- div (add $ms 999) 1000 }}
{{- else if regexMatch "^[0-9]+s?$" $v }}
{{- trimSuffix "s" $v | atoi }}
{{- else if regexMatch "^[0-9]+m$" $v }}
{{- mul (trimSuffix "m" $v | atoi) 60 }}
{{- else if regexMatch "^[0-9]+h$" $v }}
{{- mul (trimSuffix "h" $v | atoi) 3600 }}
{{- else }}
{{- fail (printf "shutdownGrace %q: expected a number with an optional unit (ms, s, m, h)" $v) }}
{{- end }}
{{- end }}

{{/*
"true" when a value is neither null nor "" (0 counts as set), else "".
*/}}
{{- define "stockd.isSet" -}}
{{- if and (not (kindIs "invalid" .)) (ne (toString .) "") }}true{{ end }}
{{- end }}

{{/*
Checks of values that a schema cannot express. Included by the Deployment.
*/}}
{{- define "stockd.validate" -}}
{{- if not .Values.backends.secretName }}
{{- fail "backends.secretName is required: the name of an existing Secret with REDIS_URL and DATABASE_URL" }}
{{- end }}
{{- $grace := include "stockd.durationSeconds" .Values.shutdownGrace | atoi }}
{{- $preStop := int .Values.preStopSleepSeconds }}
{{- $tgps := int .Values.terminationGracePeriodSeconds }}
{{- if ge (add $grace $preStop) $tgps }}
{{- fail (printf "preStopSleepSeconds (%d) + shutdownGrace (%s = %ds) must be shorter than terminationGracePeriodSeconds (%d), or the kubelet kills stockd mid-drain" $preStop (toString .Values.shutdownGrace) $grace $tgps) }}
{{- end }}
{{- $managed := list "STOCKD_GRPC_ADDR" "STOCKD_HTTP_ADDR" "STOCKD_SHUTDOWN_GRACE" "STOCKD_AUTH_TOKENS_FILE" "STOCKD_TLS_CERT" "STOCKD_TLS_KEY" "STOCKD_TLS_CLIENT_CA" "REDIS_URL" "DATABASE_URL" }}
{{- range $k, $v := .Values.config }}
{{- if has $k $managed }}
{{- fail (printf "config.%s is set by the chart from other values; remove it from config" $k) }}
{{- end }}
{{- if not (regexMatch "^STOCKD_[A-Z0-9_]+$" $k) }}
{{- fail (printf "config.%s: config keys are stockd environment variables (STOCKD_...); use extraEnv for others" $k) }}
{{- end }}
{{- end }}
{{- if .Values.podDisruptionBudget.enabled }}
{{- $min := include "stockd.isSet" .Values.podDisruptionBudget.minAvailable }}
{{- $max := include "stockd.isSet" .Values.podDisruptionBudget.maxUnavailable }}
{{- if eq $min $max }}
{{- fail "podDisruptionBudget: set exactly one of minAvailable and maxUnavailable (the other to \"\")" }}
{{- end }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- end }}

{{/*
Probe type for readiness/startup: "grpc" or "http". "" picks grpc, or http when
TLS is on (the kubelet's gRPC probe cannot speak TLS).
Usage: include "stockd.probeType" (list .Values.probes.readiness .Values.tls.secretName)
*/}}
{{- define "stockd.probeType" -}}
{{- $probe := index . 0 }}
{{- $tls := index . 1 }}
{{- if $probe.type }}
{{- $probe.type }}
{{- else if $tls }}
{{- "http" }}
{{- else }}
{{- "grpc" }}
{{- end }}
{{- end }}

{{/*
Environment of the stockd container and the migration Job.
*/}}
{{- define "stockd.env" -}}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.backends.secretName | quote }}
      key: {{ .Values.backends.redisUrlKey | quote }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.backends.secretName | quote }}
      key: {{ .Values.backends.databaseUrlKey | quote }}
- name: STOCKD_GRPC_ADDR
  value: {{ include "stockd.listenAddr" (list .Values.listenAddress .Values.service.ports.grpc) | quote }}
- name: STOCKD_HTTP_ADDR
  value: {{ include "stockd.listenAddr" (list .Values.listenAddress .Values.service.ports.http) | quote }}
- name: STOCKD_SHUTDOWN_GRACE
  value: {{ .Values.shutdownGrace | toString | quote }}
{{- range $k, $v := .Values.config }}
{{- if ne (toString $v) "" }}
- name: {{ $k }}
  value: {{ toString $v | quote }}
{{- end }}
{{- end }}
{{- if .Values.auth.tokensSecret }}
- name: STOCKD_AUTH_TOKENS_FILE
  value: {{ printf "/etc/stockd/tokens/%s" .Values.auth.tokensKey | quote }}
{{- end }}
{{- if .Values.tls.secretName }}
- name: STOCKD_TLS_CERT
  value: {{ printf "/etc/stockd/tls/%s" .Values.tls.certKey | quote }}
- name: STOCKD_TLS_KEY
  value: {{ printf "/etc/stockd/tls/%s" .Values.tls.keyKey | quote }}
{{- if .Values.tls.caKey }}
- name: STOCKD_TLS_CLIENT_CA
  value: {{ printf "/etc/stockd/tls/%s" .Values.tls.caKey | quote }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Volumes shared by the Deployment and the migration Job: /tmp, and the auth
and TLS Secrets when configured.
*/}}
{{- define "stockd.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit | quote }}
{{- if .Values.auth.tokensSecret }}
- name: auth-tokens
  secret:
    secretName: {{ .Values.auth.tokensSecret | quote }}
    defaultMode: 0440
    items:
      - key: {{ .Values.auth.tokensKey | quote }}
        path: {{ .Values.auth.tokensKey | quote }}
{{- end }}
{{- if .Values.tls.secretName }}
- name: tls
  secret:
    secretName: {{ .Values.tls.secretName | quote }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{- define "stockd.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.auth.tokensSecret }}
- name: auth-tokens
  mountPath: /etc/stockd/tokens
  readOnly: true
{{- end }}
{{- if .Values.tls.secretName }}
- name: tls
  mountPath: /etc/stockd/tls
  readOnly: true
{{- end }}
{{- end }}
