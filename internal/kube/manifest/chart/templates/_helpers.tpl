{{- define "bowline.rev" -}}{{ if .Values.revision }}-{{ .Values.revision }}{{ end }}{{- end -}}
{{- define "bowline.image" -}}{{ .Values.hub }}/bowline:{{ .Values.tag | default .Chart.AppVersion }}{{- end -}}
{{- define "bowline.labels" -}}
app.kubernetes.io/part-of: bowline
{{- if .Values.revision }}
istio.io/rev: {{ .Values.revision }}
{{- end }}
{{- end -}}
