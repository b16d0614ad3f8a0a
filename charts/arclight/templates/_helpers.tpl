{{/* Common labels of every object of the chart. */}}
{{- define "arclight.labels" -}}
app.kubernetes.io/name: arclight
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* Selector labels of the operator pods. */}}
{{- define "arclight.selectorLabels" -}}
app.kubernetes.io/name: arclight
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Name prefix of cluster-scoped objects. */}}
{{- define "arclight.fullname" -}}
{{- if eq .Release.Name "arclight" }}arclight{{ else }}{{ printf "%s-arclight" .Release.Name | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end }}
