{{- define "ogem.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ogem.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "ogem.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "ogem.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ogem.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ogem.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ogem.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ogem.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ogem.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "ogem.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ogem.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ogem.secretName" -}}
{{- default (include "ogem.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "ogem.configSource" -}}
{{- if .Values.config.inline -}}{{ include "ogem.fullname" . }}-config
{{- else if .Values.config.existingConfigMap -}}{{ .Values.config.existingConfigMap }}
{{- else if .Values.config.existingSecret -}}{{ .Values.config.existingSecret }}
{{- end -}}
{{- end -}}

{{/* The environment of every Ogem container (web, worker, beat, migrations). */}}
{{- define "ogem.env" -}}
- name: DJANGO_SETTINGS_MODULE
  value: ogem_site.settings.production
{{- if .Values.postgresql.enabled }}
- name: OGEM_POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .Release.Name }}-postgresql, key: password}
- name: DATABASE_URL
  value: {{ printf "postgres://%s:$(OGEM_POSTGRES_PASSWORD)@%s-postgresql:5432/%s" .Values.postgresql.auth.username .Release.Name .Values.postgresql.auth.database | quote }}
{{- end }}
{{- if .Values.redis.enabled }}
- name: REDIS_URL
  value: {{ printf "redis://%s-redis:6379/0" .Release.Name | quote }}
{{- end }}
{{- if .Values.config.url }}
- name: OGEM_CONFIG
  value: {{ .Values.config.url | quote }}
{{- else if include "ogem.configSource" . }}
- name: OGEM_CONFIG
  value: {{ printf "/etc/ogem/%s" .Values.config.file | quote }}
{{- end }}
{{- with .Values.config.environment }}
- name: OGEM_ENV
  value: {{ . | quote }}
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{- define "ogem.envFrom" -}}
- secretRef:
    name: {{ include "ogem.secretName" . }}
{{- range .Values.secrets.extraEnvFromSecrets }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end -}}

{{- define "ogem.volumeMounts" -}}
- name: var
  mountPath: /app/var
{{- if and (not .Values.config.url) (include "ogem.configSource" .) }}
- name: config
  mountPath: /etc/ogem
  readOnly: true
{{- end }}
{{- end -}}

{{- define "ogem.volumes" -}}
- name: var
{{- if .Values.persistence.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.persistence.existingClaim }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- if and (not .Values.config.url) (include "ogem.configSource" .) }}
- name: config
{{- if .Values.config.existingSecret }}
  secret:
    secretName: {{ .Values.config.existingSecret }}
{{- else }}
  configMap:
    name: {{ include "ogem.configSource" . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pods start once the database has every migration: `migrate --check` exits 0 then. */}}
{{- define "ogem.waitForMigrations" -}}
- name: wait-for-migrations
  image: {{ include "ogem.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["sh", "-c", "until python manage.py migrate --check >/dev/null; do echo waiting for migrations; sleep 3; done"]
  env:
    {{- include "ogem.env" . | nindent 4 }}
  envFrom:
    {{- include "ogem.envFrom" . | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    {{- include "ogem.volumeMounts" . | nindent 4 }}
{{- end -}}

{{- define "ogem.podSpecCommon" -}}
serviceAccountName: {{ include "ogem.serviceAccountName" . }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
volumes:
  {{- include "ogem.volumes" . | nindent 2 }}
{{- end -}}
