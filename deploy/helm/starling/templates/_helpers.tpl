{{/* Name of the chart, or nameOverride. */}}
{{- define "starling.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: fullnameOverride, or the release name
when it already contains the chart name, or RELEASE-CHART. The StatefulSet
adds "-N" to it for pod names, so it is cut to 52 characters.
*/}}
{{- define "starling.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "starling.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "starling.labels" -}}
helm.sh/chart: {{ include "starling.chart" . }}
{{ include "starling.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the broker pods. */}}
{{- define "starling.selectorLabels" -}}
app.kubernetes.io/name: {{ include "starling.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "starling.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "starling.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the Secret with the admin token, empty when there is none. */}}
{{- define "starling.adminTokenSecret" -}}
{{- if .Values.adminToken.existingSecret }}
{{- .Values.adminToken.existingSecret }}
{{- else if .Values.adminToken.create }}
{{- printf "%s-admin-token" (include "starling.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Content of starling.yaml: the keys the chart derives from its values, with
.Values.config merged over them.
*/}}
{{- define "starling.config" -}}
{{- $listeners := list }}
{{- if .Values.mqtt.enabled }}
{{- $listeners = append $listeners (dict
      "name" "mqtt"
      "url" (printf "tcp://0.0.0.0:%d" (int .Values.mqtt.port))
      "allow_anonymous" .Values.mqtt.allowAnonymous) }}
{{- end }}
{{- if .Values.tls.enabled }}
{{- $tls := dict
      "cert_file" "/etc/starling/tls/tls.crt"
      "key_file" "/etc/starling/tls/tls.key"
      "client_auth" .Values.tls.clientAuth }}
{{- if ne .Values.tls.clientAuth "none" }}
{{- $_ := set $tls "client_ca_file" (printf "/etc/starling/tls/%s" .Values.tls.clientCAKey) }}
{{- end }}
{{- $listeners = append $listeners (dict
      "name" "mqtts"
      "url" (printf "tls://0.0.0.0:%d" (int .Values.tls.port))
      "allow_anonymous" .Values.tls.allowAnonymous
      "tls" $tls) }}
{{- end }}
{{- $base := dict
      "data_dir" "/data"
      "durability" .Values.durability
      "log" (dict "level" .Values.log.level "format" .Values.log.format)
      "listeners" $listeners }}
{{- toYaml (mergeOverwrite $base (deepCopy (.Values.config | default dict))) }}
{{- end }}

{{/* Name of the headless Service, the pods' DNS subdomain. */}}
{{- define "starling.headless" -}}
{{- printf "%s-headless" (include "starling.fullname" .) }}
{{- end }}

{{/* DNS name of the headless Service, which lists every pod. */}}
{{- define "starling.headlessDNS" -}}
{{- printf "%s.%s.svc.%s" (include "starling.headless" .) .Release.Namespace .Values.cluster.clusterDomain }}
{{- end }}

{{/* Name of the Secret with the peer CA, node certificates and gossip key. */}}
{{- define "starling.clusterSecret" -}}
{{- default (printf "%s-cluster" (include "starling.fullname" .)) .Values.cluster.existingSecret }}
{{- end }}

{{/*
Size of the bootstrap set: cluster.bootstrapExpect, or the --bootstrap-expect
of the running StatefulSet on an upgrade, or replicaCount at the first
install. Keeping the first value means that scaling changes only
spec.replicas, not the pod template, so it restarts no pod.
*/}}
{{- define "starling.bootstrapExpect" -}}
{{- $n := int .Values.replicaCount }}
{{- if .Values.cluster.bootstrapExpect }}
{{- $n = int .Values.cluster.bootstrapExpect }}
{{- else }}
{{- with lookup "apps/v1" "StatefulSet" .Release.Namespace (include "starling.fullname" .) }}
{{- range (index .spec.template.spec.containers 0).args }}
{{- if hasPrefix "--bootstrap-expect=" . }}
{{- $n = int (trimPrefix "--bootstrap-expect=" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $n }}
{{- end }}

{{/* Checks of values that would otherwise fail only once the pod starts. */}}
{{- define "starling.validate" -}}
{{- if lt (int .Values.replicaCount) 1 }}
{{- fail (printf "replicaCount %d is invalid: use 1 or more" (int .Values.replicaCount)) }}
{{- end }}
{{- if gt (int .Values.cluster.bootstrapExpect) (int .Values.replicaCount) }}
{{- fail (printf "cluster.bootstrapExpect (%d) exceeds replicaCount (%d): the bootstrap set would wait for pods that do not exist" (int .Values.cluster.bootstrapExpect) (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled is true but tls.secretName is empty: name a Secret with tls.crt and tls.key" }}
{{- end }}
{{- if not (has .Values.tls.clientAuth (list "none" "optional" "required")) }}
{{- fail (printf "tls.clientAuth %q is invalid: use none, optional or required" .Values.tls.clientAuth) }}
{{- end }}
{{- if not (or .Values.mqtt.enabled .Values.tls.enabled) }}
{{- fail "mqtt.enabled and tls.enabled are both false: enable at least one, because the Services and container ports come from them" }}
{{- end }}
{{- $budget := int .Values.shutdownTimeoutSeconds }}
{{- if .Values.preStop.enabled }}
{{- $budget = add $budget (int .Values.preStop.timeoutSeconds) }}
{{- end }}
{{- if le (int .Values.terminationGracePeriodSeconds) $budget }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed shutdownTimeoutSeconds plus preStop.timeoutSeconds when the hook is enabled (%d), or Kubernetes kills the broker in the middle of its shutdown" (int .Values.terminationGracePeriodSeconds) $budget) }}
{{- end }}
{{- if not (has .Values.podAntiAffinity (list "soft" "hard" "none")) }}
{{- fail (printf "podAntiAffinity %q is invalid: use soft, hard or none" .Values.podAntiAffinity) }}
{{- end }}
{{- $ports := list (int .Values.http.port) (int .Values.cluster.gossipPort) (int .Values.cluster.peerPort) }}
{{- if .Values.mqtt.enabled }}{{ $ports = append $ports (int .Values.mqtt.port) }}{{ end }}
{{- if .Values.tls.enabled }}{{ $ports = append $ports (int .Values.tls.port) }}{{ end }}
{{- if ne (len $ports) (len (uniq $ports)) }}
{{- fail (printf "the ports %v of http, cluster and the MQTT listeners must differ" $ports) }}
{{- end }}
{{- end }}
