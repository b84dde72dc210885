{{/* The chart's name, overridable. */}}
{{- define "hatchery-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the release name alone when it already holds the chart's name. */}}
{{- define "hatchery-operator.fullname" -}}
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

{{- define "hatchery-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hatchery-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hatchery-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "hatchery-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "hatchery-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hatchery-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* What the operator may do, cluster-wide or in each watched namespace. */}}
{{- define "hatchery-operator.rules" -}}
# LoadTests: watch them, keep their status, and drop the finalizer earlier versions added (a
# patch).
- apiGroups: [hatchery.io]
  resources: [loadtests]
  verbs: [get, list, watch, patch]
- apiGroups: [hatchery.io]
  resources: [loadtests/status]
  verbs: [get, patch]
- apiGroups: [hatchery.io]
  resources: [loadtests/finalizers]
  verbs: [update]
# The children, created and updated by server-side apply; deletion is the garbage collector's.
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [get, list, watch, create, patch]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, watch, create, patch]
# Each LoadTest's worker token, TLS certificate and web credentials: created once; the web
# credentials (spec.webAuth) are read back to reach the master (get, by name; never listed).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
# Pods: watched into a cache (no list per reconcile), open the master's readiness gate, read the
# master's API (get) and retarget a running test through its /swarm (create: a POST).
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [pods/proxy]
  verbs: [get, create]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}
