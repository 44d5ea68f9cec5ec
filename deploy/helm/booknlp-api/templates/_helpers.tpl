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

{{/* Image: the GPU build carries gpu.tagSuffix (Dockerfile.gpu), the CPU build the plain tag. */}}
{{- define "booknlp-api.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.gpu.enabled }}{{ $tag = printf "%s%s" $tag .Values.gpu.tagSuffix }}{{ end }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{- define "booknlp-api.dataClaim" -}}
{{- default (printf "%s-data" (include "booknlp-api.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}
