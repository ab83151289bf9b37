{{/* Chart name, overridable. */}}
{{- define "recontext.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "recontext.fullname" -}}
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

{{/* Labels on every object. */}}
{{- define "recontext.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "recontext.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: recontext
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The pods' identity: the Deployment's selector; the image Service adds the leader label. */}}
{{- define "recontext.selectorLabels" -}}
app.kubernetes.io/name: {{ include "recontext.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "recontext.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "recontext.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Secret holding the image URL signing key (key "key"). */}}
{{- define "recontext.signingKeySecretName" -}}
{{- default (printf "%s-signing-key" (include "recontext.fullname" .)) .Values.imageServer.signingKey.existingSecret }}
{{- end }}

{{/* The URL CDI imports images from: the image Service, which selects the leader only. */}}
{{- define "recontext.imageBaseURL" -}}
{{- if .Values.imageServer.baseURL }}
{{- .Values.imageServer.baseURL | trimSuffix "/" }}
{{- else }}
{{- printf "http://%s-images.%s.svc:%d" (include "recontext.fullname" .) .Release.Namespace (int .Values.imageServer.service.port) }}
{{- end }}
{{- end }}

{{- define "recontext.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The namespace the operator watches (--namespace): operator.watchNamespace, else the release
namespace with rbac.namespaced (its Role grants nothing elsewhere), else "" (all namespaces). */}}
{{- define "recontext.watchNamespace" -}}
{{- if .Values.operator.watchNamespace }}
{{- .Values.operator.watchNamespace }}
{{- else if .Values.rbac.namespaced }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}
