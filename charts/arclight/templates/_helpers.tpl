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

{{/* The operator image: repository@digest when image.digest is set, else repository:tag. */}}
{{- define "arclight.image" -}}
{{- if .Values.image.digest }}{{ printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}{{ printf "%s:%s" .Values.image.repository .Values.image.tag }}{{ end }}
{{- end }}

{{/* The trainer image: trainer.image without its tag, @trainer.digest, when a digest is set.
     Only a trailing ":tag" after the last "/" is a tag (a registry port is kept). */}}
{{- define "arclight.trainerImage" -}}
{{- if .Values.trainer.digest }}{{ printf "%s@%s" (regexReplaceAll ":[^:/]+$" .Values.trainer.image "") .Values.trainer.digest }}
{{- else }}{{ .Values.trainer.image }}{{ end }}
{{- end }}

{{/* Name of the kopf peering objects (ClusterKopfPeering or KopfPeering) the replicas share. */}}
{{- define "arclight.peeringName" -}}
{{ include "arclight.fullname" . }}
{{- end }}

{{/* kopf runs with peering when there is more than one replica. */}}
{{- define "arclight.peering" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/* Namespaces that get the trainer and serving NetworkPolicies (JSON list). */}}
{{- define "arclight.policyNamespaces" -}}
{{- concat (.Values.watchNamespaces | default list) (.Values.networkPolicy.namespaces | default list) | uniq | toJson }}
{{- end }}

{{/* Selector of the operator's namespace in NetworkPolicies of other namespaces. */}}
{{- define "arclight.operatorNamespaceSelector" -}}
{{- with .Values.networkPolicy.operatorNamespaceSelector }}{{ toYaml . }}
{{- else }}matchLabels:
  kubernetes.io/metadata.name: {{ .Release.Namespace }}
{{- end }}
{{- end }}

{{/* Labels of trainer pods (the TrainingRun builder's pod template). */}}
{{- define "arclight.trainerPodLabels" -}}
arclight.dev/owner-kind: TrainingRun
app.kubernetes.io/component: trainer
{{- end }}

{{/* Labels of model server pods (the ModelDeployment builder's pod template). */}}
{{- define "arclight.servingPodLabels" -}}
arclight.dev/owner-kind: ModelDeployment
app.kubernetes.io/component: server
{{- end }}

{{/* NetworkPolicy egress rule: DNS (networkPolicy.dns.to, or any address), port 53. */}}
{{- define "arclight.dnsEgress" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
  {{- with .Values.networkPolicy.dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* NetworkPolicy egress rule: the API server (its endpoint addresses, networkPolicy.apiServer.cidrs;
     by port only when that is empty). */}}
{{- define "arclight.apiServerEgress" -}}
- ports:
    {{- range .Values.networkPolicy.apiServer.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  {{- with .Values.networkPolicy.apiServer.cidrs }}
  to:
    {{- range . }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  {{- end }}
{{- end }}

{{/* One CRD file of the chart with the chart's labels and, with crds.keep, the keep policy.
     Argument: (list $ "files/crds/NAME.yaml"). */}}
{{- define "arclight.crd" -}}
{{- $root := index . 0 }}
{{- $path := index . 1 }}
{{- $crd := $root.Files.Get $path | fromYaml }}
{{- $meta := $crd.metadata }}
{{- $_ := set $meta "labels" (merge (dict) ($meta.labels | default dict) (include "arclight.labels" $root | fromYaml)) }}
{{- if $root.Values.crds.keep }}
{{- $_ := set $meta "annotations" (merge (dict "helm.sh/resource-policy" "keep") ($meta.annotations | default dict)) }}
{{- end -}}
---
# Source: {{ $path }}
{{ toYaml $crd }}
{{- end }}

{{/* Name of the bundled ledger's StatefulSet, Service and Secret (ledger.bundled). */}}
{{- define "arclight.postgresName" -}}
arclight-postgres
{{- end }}

{{/* Selector labels of the bundled ledger's Postgres pod. */}}
{{- define "arclight.postgresSelectorLabels" -}}
app.kubernetes.io/name: arclight
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: ledger
{{- end }}

{{/* Labels of the bundled ledger's objects. */}}
{{- define "arclight.postgresLabels" -}}
{{ include "arclight.labels" . }}
app.kubernetes.io/component: ledger
{{- end }}

{{/* The bundled ledger's image: repository@digest when a digest is set, else repository:tag. */}}
{{- define "arclight.postgresImage" -}}
{{- with .Values.ledger.bundled.image }}
{{- if .digest }}{{ printf "%s@%s" .repository .digest }}{{ else }}{{ printf "%s:%s" .repository .tag }}{{ end }}
{{- end }}
{{- end }}
