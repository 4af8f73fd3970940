{{/*
The chart keeps to a small subset of Helm's template language on purpose (fields, if/else, range,
define/include, toYaml, nindent, indent, quote, default, required, eq, ne, and, or, not,
.Files.Get): test/helpers/helm-render.ts renders exactly that subset in the tests and refuses
anything else, so what the tests check is what Helm renders.
*/}}
{{- define "kthena-router.labels" -}}
app.kubernetes.io/name: kthena-router
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{- define "kthena-router.selectorLabels" -}}
app.kubernetes.io/component: kthena-router
app.kubernetes.io/name: kthena-router
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
