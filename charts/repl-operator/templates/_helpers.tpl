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

{{/*
The shim's container port (its --listen), which Services and NetworkPolicies name.
*/}}
{{- define "repl-operator.shim.containerPort" -}}
8080
{{- end }}

{{/*
The label that admits a pod of the release namespace to the shim through the shim's NetworkPolicy
(podNetworkPolicy): <fullname>-shim-client: "true". The fullname part is cut to 51 characters so the
key stays within the 63 characters of a label name.
*/}}
{{- define "repl-operator.shim.clientLabel" -}}
{{- printf "%s-shim-client" (include "repl-operator.fullname" . | trunc 51 | trimSuffix "-") }}
{{- end }}

{{- define "repl-operator.test.selectorLabels" -}}
{{ include "repl-operator.selectorLabels" . }}
app.kubernetes.io/component: test
{{- end }}

{{- define "repl-operator.test.labels" -}}
{{ include "repl-operator.labels" . }}
app.kubernetes.io/component: test
{{- end }}

{{/*
A Deployment's affinity: its `affinity` value, plus, unless that sets podAntiAffinity itself, a
podAntiAffinity on kubernetes.io/hostname against the Deployment's own pods (spread.antiAffinity:
"soft" is a preference, so a one-node cluster still runs every replica; "hard" a requirement;
"off" none). Call with (dict "root" $ "affinity" <the value> "selector" <selector labels, YAML>).
*/}}
{{- define "repl-operator.affinity" -}}
{{- $affinity := deepCopy (.affinity | default dict) }}
{{- $mode := .root.Values.spread.antiAffinity }}
{{- if and (ne $mode "off") (not (hasKey $affinity "podAntiAffinity")) }}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (fromYaml .selector)) }}
{{- if eq $mode "hard" }}
{{- $_ := set $affinity "podAntiAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (list $term)) }}
{{- else }}
{{- $_ := set $affinity "podAntiAffinity" (dict "preferredDuringSchedulingIgnoredDuringExecution" (list (dict "weight" 100 "podAffinityTerm" $term))) }}
{{- end }}
{{- end }}
{{- with $affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A Deployment's topologySpreadConstraints: its `topologySpreadConstraints` value when not empty,
else one constraint per key of spread.topologySpread.topologyKeys (maxSkew, whenUnsatisfiable from
there; ScheduleAnyway by default, so a one-node or one-zone cluster still runs every replica),
counting only the pods of the same ReplicaSet revision (matchLabelKeys: pod-template-hash), so a
rolling update's old pods do not skew the new ones. Call with (dict "root" $ "constraints" <the
value> "selector" <selector labels, YAML>).
*/}}
{{- define "repl-operator.topologySpread" -}}
{{- $constraints := .constraints | default list }}
{{- if not $constraints }}
{{- $s := .root.Values.spread.topologySpread }}
{{- range $key := $s.topologyKeys }}
{{- $constraints = append $constraints (dict "maxSkew" $s.maxSkew "topologyKey" $key "whenUnsatisfiable" $s.whenUnsatisfiable "labelSelector" (dict "matchLabels" (fromYaml $.selector)) "matchLabelKeys" (list "pod-template-hash")) }}
{{- end }}
{{- end }}
{{- with $constraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A PodDisruptionBudget's policy: minAvailable when it is set (not empty), else maxUnavailable.
*/}}
{{- define "repl-operator.pdbPolicy" -}}
{{- $min := .minAvailable }}
{{- if and (not (kindIs "invalid" $min)) (ne (toString $min) "") }}
minAvailable: {{ $min }}
{{- else }}
maxUnavailable: {{ .maxUnavailable }}
{{- end }}
{{- end }}

{{/*
The probes of a container serving /healthz and /readyz on the named port `port`: a startupProbe
(/healthz: the process serves) that holds the others back while the binary starts, a livenessProbe
on /healthz (restart only a process that no longer answers) and a readinessProbe on /readyz (the
operator: every cache has synced; the shim: the API server answers). Timings from `probes`.
Call with (dict "root" $ "port" <port name>).
*/}}
{{- define "repl-operator.probes" -}}
{{- $p := .root.Values.probes }}
startupProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
  {{- toYaml $p.startup | nindent 2 }}
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
  {{- toYaml $p.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ .port }}
  {{- toYaml $p.readiness | nindent 2 }}
{{- end }}

{{/*
NetworkPolicy egress rules of the chart's pods (podNetworkPolicy), as YAML list items.

"repl-operator.egress.apiServer": the Kubernetes API server. A NetworkPolicy sees a connection to
the `kubernetes` Service after its DNAT, so it must name the endpoints (IP and port), not the
ClusterIP: podNetworkPolicy.apiServer.cidrs / .ports when set, else what Helm's `lookup` finds in
the EndpointSlices of the Service `kubernetes` in namespace default (then its Endpoints), else
(helm template, a client-side dry run, no right to read them) any address on 443 and 6443.
*/}}
{{- define "repl-operator.egress.apiServer" -}}
{{- $api := .Values.podNetworkPolicy.apiServer }}
{{- $cidrs := $api.cidrs | default list }}
{{- $ports := $api.ports | default list }}
{{- $foundCidrs := list }}
{{- $foundPorts := list }}
{{- if or (not $cidrs) (not $ports) }}
{{- $slices := lookup "discovery.k8s.io/v1" "EndpointSlice" "default" "" }}
{{- range $slice := ($slices.items | default list) }}
{{- if eq (dig "metadata" "labels" "kubernetes.io/service-name" "" $slice) "kubernetes" }}
{{- range $endpoint := ($slice.endpoints | default list) }}
{{- range $ip := ($endpoint.addresses | default list) }}
{{- $foundCidrs = append $foundCidrs (printf "%s/%s" $ip (ternary "128" "32" (contains ":" $ip))) }}
{{- end }}
{{- end }}
{{- range $port := ($slice.ports | default list) }}
{{- $foundPorts = append $foundPorts (int $port.port) }}
{{- end }}
{{- end }}
{{- end }}
{{- if not $foundCidrs }}
{{- $endpoints := lookup "v1" "Endpoints" "default" "kubernetes" }}
{{- range $subset := ($endpoints.subsets | default list) }}
{{- range $address := ($subset.addresses | default list) }}
{{- $foundCidrs = append $foundCidrs (printf "%s/%s" $address.ip (ternary "128" "32" (contains ":" $address.ip))) }}
{{- end }}
{{- range $port := ($subset.ports | default list) }}
{{- $foundPorts = append $foundPorts (int $port.port) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $source := "" }}
{{- if $cidrs }}
{{- $source = "podNetworkPolicy.apiServer.cidrs" }}
{{- else if $foundCidrs }}
{{- $cidrs = $foundCidrs | uniq | sortAlpha }}
{{- $source = "the endpoints of the Service default/kubernetes, found at install" }}
{{- end }}
{{- if not $ports }}
{{- if and $foundCidrs $foundPorts }}
{{- $ports = $foundPorts | uniq }}
{{- else }}
{{- $ports = list 443 6443 }}
{{- end }}
{{- end }}
{{- if $source }}
# The Kubernetes API server ({{ $source }}).
- to:
    {{- range $cidrs }}
    - ipBlock:
        cidr: {{ . | quote }}
    {{- end }}
{{- else }}
# The Kubernetes API server. Its endpoints were not found (helm template, a client-side dry run, or
# no right to list EndpointSlices in namespace default): any address on 443 and 6443. Set
# podNetworkPolicy.apiServer.cidrs to the endpoint IPs (kubectl get endpointslice -n default
# -l kubernetes.io/service-name=kubernetes) to narrow it.
- to:
    - ipBlock:
        cidr: "0.0.0.0/0"
    - ipBlock:
        cidr: "::/0"
{{- end }}
  ports:
    {{- range $ports }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
{{- end }}

{{/*
"repl-operator.egress.dns": the cluster DNS (podNetworkPolicy.dns: its pods in their namespace,
NodeLocal DNSCache's address and any other CIDRs listed, and the ClusterIP of the DNS Service when
`lookup` finds it: NodeLocal DNSCache in iptables mode answers there without a DNAT), UDP and TCP 53.
*/}}
{{- define "repl-operator.egress.dns" -}}
{{- $dns := .Values.podNetworkPolicy.dns }}
{{- $cidrs := $dns.cidrs | default list }}
{{- if $dns.serviceName }}
{{- $svc := lookup "v1" "Service" $dns.namespace $dns.serviceName }}
{{- range $ip := (dig "spec" "clusterIPs" (list) $svc) }}
{{- if ne $ip "None" }}
{{- $cidrs = append $cidrs (printf "%s/%s" $ip (ternary "128" "32" (contains ":" $ip))) }}
{{- end }}
{{- end }}
{{- end }}
# DNS: the cluster DNS pods{{ if $cidrs }}, {{ join ", " ($cidrs | uniq) }}{{ end }}.
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ $dns.namespace }}
      podSelector:
        matchLabels:
          {{- toYaml $dns.podSelector | nindent 10 }}
    {{- range ($cidrs | uniq) }}
    - ipBlock:
        cidr: {{ . | quote }}
    {{- end }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end }}
