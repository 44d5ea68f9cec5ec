{{/* Names, labels and the image reference shared by every template. */}}

{{- define "booknlp-api.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "booknlp-api.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "booknlp-api.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "booknlp-api.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "booknlp-api.selectorLabels" -}}
app.kubernetes.io/name: {{ include "booknlp-api.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "booknlp-api.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "booknlp-api.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
booknlp-api/variant: {{ ternary "gpu" "cpu" .Values.gpu.enabled }}
{{- end }}

{{- define "booknlp-api.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "booknlp-api.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image of the single pod: the GPU build carries gpu.tagSuffix (Dockerfile.gpu), the CPU build the plain tag. */}}
{{- define "booknlp-api.image" -}}
{{- include "booknlp-api.imageFor" (dict "root" . "gpu" .Values.gpu.enabled) }}
{{- end }}

{{- define "booknlp-api.dataClaim" -}}
{{- default (printf "%s-data" (include "booknlp-api.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/* Scaled out: jobs live in PostgreSQL (database.existingSecret, or the in-chart postgresql), so the API
     runs as its own stateless Deployment and the workers as another. Otherwise one pod with SQLite on /data. */}}
{{- define "booknlp-api.scaled" -}}
{{- if or .Values.database.existingSecret .Values.postgresql.enabled }}true{{ end }}
{{- end }}

{{- define "booknlp-api.databaseSecret" -}}
{{- default (printf "%s-database" (include "booknlp-api.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{- define "booknlp-api.databaseSecretKey" -}}
{{- ternary .Values.database.secretKey "database-url" (ne .Values.database.existingSecret "") }}
{{- end }}

{{/* Pod-level settings every booknlp-api pod shares (API and workers). */}}
{{- define "booknlp-api.podSpec" -}}
serviceAccountName: {{ include "booknlp-api.serviceAccountName" . }}
automountServiceAccountToken: false
enableServiceLinks: false
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/* Environment every booknlp-api container shares; the job database URL comes from its secret when scaled. */}}
{{- define "booknlp-api.commonEnv" -}}
- name: BOOKNLP_MODELS_DIR
  value: /models
- name: BOOKNLP_MODEL
  value: {{ .Values.model | quote }}
- name: BOOKNLP_DATA_DIR
  value: /data
- name: BOOKNLP_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: BOOKNLP_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: BOOKNLP_SHUTDOWN_GRACE_SECONDS
  value: {{ .Values.shutdownGraceSeconds | quote }}
{{- with .Values.torchThreads }}
- name: BOOKNLP_TORCH_THREADS
  value: {{ . | quote }}
{{- end }}
{{- with .Values.limits.jobTimeoutSeconds }}
- name: BOOKNLP_JOB_TIMEOUT_SECONDS
  value: {{ . | quote }}
{{- end }}
{{- if include "booknlp-api.scaled" . }}
- name: BOOKNLP_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "booknlp-api.databaseSecret" . }}
      key: {{ include "booknlp-api.databaseSecretKey" . }}
{{- end }}
- name: HOME
  value: /home/booknlp
- name: HF_HUB_OFFLINE
  value: "1"
- name: TRANSFORMERS_OFFLINE
  value: "1"
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Scratch and model mounts every booknlp-api container shares (/data is each template's own). */}}
{{- define "booknlp-api.commonMounts" -}}
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /home/booknlp
{{- if eq .Values.models.source "pvc" }}
- name: models
  mountPath: /models
  readOnly: true
  {{- with .Values.models.subPath }}
  subPath: {{ . }}
  {{- end }}
{{- end }}
{{- end }}

{{- define "booknlp-api.commonVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.scratch.tmpSizeLimit }}
- name: home
  emptyDir:
    sizeLimit: {{ .Values.scratch.homeSizeLimit }}
{{- if eq .Values.models.source "pvc" }}
- name: models
  persistentVolumeClaim:
    claimName: {{ .Values.models.existingClaim }}
    readOnly: true
{{- end }}
{{- end }}

{{/* GPU scheduling (runtime class, node selector, tolerations) for pods that run on GPUs. */}}
{{- define "booknlp-api.scheduling" -}}
{{- $gpu := .gpu }}
{{- with .root }}
{{- if and $gpu .Values.gpu.runtimeClassName }}
runtimeClassName: {{ .Values.gpu.runtimeClassName }}
{{- end }}
{{- $nodeSelector := .Values.nodeSelector }}
{{- if $gpu }}
{{- $nodeSelector = merge (deepCopy .Values.gpu.nodeSelector) .Values.nodeSelector }}
{{- end }}
{{- with $nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $tolerations := .Values.tolerations }}
{{- if $gpu }}
{{- $tolerations = concat .Values.tolerations .Values.gpu.tolerations }}
{{- end }}
{{- with $tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end }}

{{/* The image; "gpu" chooses the GPU build (tag + gpu.tagSuffix). */}}
{{- define "booknlp-api.imageFor" -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag }}
{{- if .gpu }}{{ $tag = printf "%s%s" $tag .root.Values.gpu.tagSuffix }}{{ end }}
{{- printf "%s:%s" .root.Values.image.repository $tag }}
{{- end }}

{{/* Probes of a container that serves HTTP (the API). */}}
{{- define "booknlp-api.probes" -}}
{{- range $name, $key := dict "startupProbe" "startup" "livenessProbe" "liveness" "readinessProbe" "readiness" }}
{{- $probe := index $.Values.probes $key }}
{{ $name }}:
  httpGet:
    path: {{ $probe.path }}
    port: http
  periodSeconds: {{ $probe.periodSeconds }}
  timeoutSeconds: {{ $probe.timeoutSeconds }}
  failureThreshold: {{ $probe.failureThreshold }}
{{- end }}
{{- end }}

{{/* API-side environment: where it listens, API keys and per-key limits. */}}
{{- define "booknlp-api.apiEnv" -}}
- name: BOOKNLP_HOST
  value: "0.0.0.0"
- name: BOOKNLP_PORT
  value: "8000"
- name: BOOKNLP_AUTH
  value: {{ .Values.auth.mode | quote }}
{{- if .Values.auth.existingSecret }}
- name: BOOKNLP_API_KEYS_FILE
  value: /etc/booknlp/keys/{{ .Values.auth.secretKey }}
{{- end }}
- name: BOOKNLP_RATE_LIMIT
  value: {{ .Values.limits.rateLimit | quote }}
- name: BOOKNLP_MAX_ACTIVE_JOBS_PER_KEY
  value: {{ .Values.limits.maxActiveJobsPerKey | quote }}
- name: BOOKNLP_MAX_CHARS_PER_DAY
  value: {{ .Values.limits.maxCharsPerDay | int64 | quote }}
{{- end }}

{{/* /data: alone, the data claim (SQLite, texts, results); scaled out (everything in PostgreSQL), or with
     persistence off, each pod's own scratch. */}}
{{- define "booknlp-api.dataVolume" -}}
- name: data
  {{- if and .Values.persistence.enabled (not (include "booknlp-api.scaled" .)) }}
  persistentVolumeClaim:
    claimName: {{ include "booknlp-api.dataClaim" . }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ .Values.scratch.dataSizeLimit }}
  {{- end }}
{{- end }}
