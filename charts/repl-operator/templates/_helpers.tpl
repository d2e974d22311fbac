{{/*
The chart name, or nameOverride.
*/}}
{{- define "repl-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The object name prefix: fullnameOverride, else <release>-<name> (just <release> when it already
contains the name). Truncated to 57 characters so that "<fullname>-shim" and "<fullname>-templates"
stay within the 63-character DNS label limit.
*/}}
{{- define "repl-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 53 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 53 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 53 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "repl-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "repl-operator.labels" -}}
helm.sh/chart: {{ include "repl-operator.chart" . }}
{{ include "repl-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: repl-operator
{{- end }}

{{/*
Selector labels (name, instance). Deployments add app.kubernetes.io/component, so the operator's
and the shim's selectors never overlap.
*/}}
{{- define "repl-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "repl-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "repl-operator.operator.selectorLabels" -}}
{{ include "repl-operator.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "repl-operator.shim.selectorLabels" -}}
{{ include "repl-operator.selectorLabels" . }}
app.kubernetes.io/component: shim
{{- end }}

{{- define "repl-operator.operator.labels" -}}
{{ include "repl-operator.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "repl-operator.shim.labels" -}}
{{ include "repl-operator.labels" . }}
app.kubernetes.io/component: shim
{{- end }}

{{- define "repl-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "repl-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "repl-operator.shim.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-shim" (include "repl-operator.fullname" .)) .Values.shim.serviceAccount.name }}
{{- else }}
{{- required "shim.serviceAccount.name is required when serviceAccount.create is false" .Values.shim.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "repl-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/*
The namespace the shim creates Repls in: shim.replNamespace, else watchNamespace, else the release
namespace.
*/}}
{{- define "repl-operator.replNamespace" -}}
{{- .Values.shim.replNamespace | default .Values.watchNamespace | default .Release.Namespace }}
{{- end }}

{{/*
Cross-field checks the schema cannot express. Included by the operator Deployment.
*/}}
{{- define "repl-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: without it every replica reconciles" }}
{{- end }}
{{- if eq (int .Values.metrics.port) (int .Values.health.port) }}
{{- fail "metrics.port and health.port must differ" }}
{{- end }}
{{- if and .Values.shim.enabled .Values.watchNamespace .Values.shim.replNamespace (ne .Values.shim.replNamespace .Values.watchNamespace) }}
{{- fail (printf "shim.replNamespace (%s) must equal watchNamespace (%s): the operator would never see the shim's Repls" .Values.shim.replNamespace .Values.watchNamespace) }}
{{- end }}
{{- if eq .Values.domains.ide .Values.domains.preview }}
{{- fail "domains.ide and domains.preview must differ: both hosts of a Repl would be the same" }}
{{- end }}
{{- end }}

{{/*
The shim's --cors-origins value.
*/}}
{{- define "repl-operator.shim.corsOrigins" -}}
{{- join "," .Values.shim.corsOrigins }}
{{- end }}
