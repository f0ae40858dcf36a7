{{/* Names, labels and the pieces every Herd workload shares. */}}

{{- define "herd.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-herd, or the release name when it already contains "herd". */}}
{{- define "herd.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "herd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "herd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: herd
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "replay") */}}
{{- define "herd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herd.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "herd.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "herd.runId" -}}
{{- .Values.runId | default .Release.Name -}}
{{- end -}}

{{/* The gRPC address other services dial: (dict "root" $ "component" "replay") */}}
{{- define "herd.address" -}}
{{- printf "%s-%s:%d" (include "herd.fullname" .root) .component (int .root.Values.grpcPort) -}}
{{- end -}}

{{- define "herd.redisSecretName" -}}
{{- .Values.redis.auth.existingSecret | default (printf "%s-redis" (include "herd.fullname" .)) -}}
{{- end -}}

{{/* Redis URL with $(REDIS_PASSWORD), which Kubernetes expands from the env var before it. */}}
{{- define "herd.redisUrl" -}}
{{- $url := "" -}}
{{- if .Values.redis.enabled -}}
{{- $url = printf "redis://%s-redis:6379/0" (include "herd.fullname" .) -}}
{{- else -}}
{{- $url = required "redis.external.url is required when redis.enabled is false" .Values.redis.external.url -}}
{{- if not (regexMatch "^rediss?://[^@/]+(/[0-9]*)?$" $url) -}}
{{- fail (printf "redis.external.url must be redis://host:port[/db] or rediss://... without credentials (the password comes from the Secret), got %q" $url) -}}
{{- end -}}
{{- end -}}
{{- if .Values.redis.auth.enabled -}}
{{- regexReplaceAll "^(rediss?://)" $url "${1}:$(REDIS_PASSWORD)@" -}}
{{- else -}}
{{- $url -}}
{{- end -}}
{{- end -}}

{{/* Pod annotations: the run config's checksum (pods restart when it changes) and scraping. */}}
{{- define "herd.podAnnotations" -}}
checksum/run-config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if .Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metricsPort | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{/*
The HERD_* environment of a Herd container: (dict "root" $ "component" "learner" "dirs" (dict "HERD_CHECKPOINT_DIR" "/data/checkpoints")).
herd serve reads each HERD_<FLAG> as the default of its --<flag>.
*/}}
{{- define "herd.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
- name: HERD_CONFIG
  value: /etc/herd/config/run.yaml
- name: HERD_HOST
  value: 0.0.0.0
- name: HERD_PORT
  value: {{ $v.grpcPort | quote }}
- name: HERD_METRICS_PORT
  value: {{ $v.metricsPort | quote }}
- name: HERD_RUN_ID
  value: {{ include "herd.runId" $root | quote }}
- name: HERD_LOG_LEVEL
  value: {{ $v.logLevel | quote }}
- name: HERD_REPLAY_ADDRESS
  value: {{ include "herd.address" (dict "root" $root "component" "replay") }}
- name: HERD_PARAMS_ADDRESS
  value: {{ include "herd.address" (dict "root" $root "component" "params") }}
{{- if $v.redis.auth.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "herd.redisSecretName" $root }}
      key: {{ $v.redis.auth.existingSecretKey }}
{{- end }}
- name: HERD_REDIS_URL
  value: {{ include "herd.redisUrl" $root | quote }}
{{- if eq .component "actor" }}
- name: HERD_ADVERTISE_HOST
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: HERD_ACTOR_INDEX
  value: auto
{{- else }}
- name: HERD_ADVERTISE_HOST
  value: {{ printf "%s-%s" (include "herd.fullname" $root) .component }}
{{- end }}
{{- range $name, $path := .dirs }}
- name: {{ $name }}
  value: {{ $path }}
{{- end }}
{{- if $v.tls.enabled }}
- name: HERD_TLS_CERT
  value: /etc/herd/tls/tls.crt
- name: HERD_TLS_KEY
  value: /etc/herd/tls/tls.key
- name: HERD_TLS_CA
  value: /etc/herd/tls/ca.crt
{{- if $v.tls.clientAuth }}
- name: HERD_TLS_CLIENT_AUTH
  value: "true"
{{- end }}
{{- end }}
{{- if $v.token.enabled }}
- name: HERD_TOKEN_FILE
  value: /etc/herd/token/token
{{- end }}
{{- end -}}

{{/* Probes of a Herd container: native gRPC health checks, or TCP under TLS. */}}
{{- define "herd.probes" -}}
{{- $check := dict "grpc" (dict "port" (int .Values.grpcPort)) -}}
{{- if .Values.tls.enabled -}}
{{- $check = dict "tcpSocket" (dict "port" "grpc") -}}
{{- end -}}
startupProbe:
  {{- toYaml $check | nindent 2 }}
  periodSeconds: 5
  failureThreshold: {{ .Values.probes.startupFailureThreshold }}
readinessProbe:
  {{- toYaml $check | nindent 2 }}
  periodSeconds: {{ .Values.probes.periodSeconds }}
livenessProbe:
  {{- toYaml $check | nindent 2 }}
  periodSeconds: {{ .Values.probes.periodSeconds }}
  failureThreshold: {{ .Values.probes.livenessFailureThreshold }}
{{- end -}}

{{/* Volumes every Herd pod mounts: the run config, /tmp, and the TLS and token Secrets. */}}
{{- define "herd.volumes" -}}
- name: run-config
  configMap:
    name: {{ include "herd.fullname" . }}-run-config
- name: tmp
  emptyDir: {}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ required "tls.existingSecret is required when tls.enabled" .Values.tls.existingSecret }}
{{- end }}
{{- if .Values.token.enabled }}
- name: token
  secret:
    secretName: {{ required "token.existingSecret is required when token.enabled" .Values.token.existingSecret }}
    items:
      - key: {{ .Values.token.key }}
        path: token
{{- end }}
{{- end -}}

{{- define "herd.volumeMounts" -}}
- name: run-config
  mountPath: /etc/herd/config
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: /etc/herd/tls
  readOnly: true
{{- end }}
{{- if .Values.token.enabled }}
- name: token
  mountPath: /etc/herd/token
  readOnly: true
{{- end }}
{{- end -}}

{{/*
The pod spec of a Herd service: (dict "root" $ "component" "replay" "kind" "replay" "values" .Values.replay
"dirs" (dict "HERD_CHECKPOINT_DIR" "/data/replay") "mounts" (list (dict "name" "data" "mountPath" "/data/replay"))).
*/}}
{{- define "herd.podSpec" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml $v.podSecurityContext | nindent 2 }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: {{ .component }}
    image: {{ include "herd.image" $root }}
    imagePullPolicy: {{ $v.image.pullPolicy }}
    args: ["serve", {{ .kind | quote }}]
    env:
      {{- include "herd.env" . | nindent 6 }}
    ports:
      - name: grpc
        containerPort: {{ $v.grpcPort }}
      - name: metrics
        containerPort: {{ $v.metricsPort }}
    {{- include "herd.probes" $root | nindent 4 }}
    resources:
      {{- toYaml .values.resources | nindent 6 }}
    securityContext:
      {{- toYaml $v.securityContext | nindent 6 }}
    volumeMounts:
      {{- include "herd.volumeMounts" $root | nindent 6 }}
      {{- with .mounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  {{- include "herd.volumes" $root | nindent 2 }}
{{- end -}}

{{/*
A stateful Herd service (params, replay, learner): a ClusterIP Service that clients dial,
a headless Service that governs the StatefulSet, and the StatefulSet with its claim.
(dict "root" $ "component" "replay" "values" .Values.replay "dirEnv" "HERD_CHECKPOINT_DIR" "path" "/data/replay")
*/}}
{{- define "herd.statefulService" -}}
{{- $root := .root -}}
{{- $name := printf "%s-%s" (include "herd.fullname" $root) .component -}}
{{- $selector := dict "root" $root "component" .component -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "herd.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    herd.dev/scrape: "true"
spec:
  type: ClusterIP
  selector:
    {{- include "herd.selectorLabels" $selector | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $root.Values.grpcPort }}
      targetPort: grpc
      appProtocol: grpc
    - name: metrics
      port: {{ $root.Values.metricsPort }}
      targetPort: metrics
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}-headless
  labels:
    {{- include "herd.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    {{- include "herd.selectorLabels" $selector | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $root.Values.grpcPort }}
      targetPort: grpc
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ $name }}
  labels:
    {{- include "herd.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  # One of each: one replay holds the queue, one learner holds the lease.
  replicas: 1
  serviceName: {{ $name }}-headless
  selector:
    matchLabels:
      {{- include "herd.selectorLabels" $selector | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "herd.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
      annotations:
        {{- include "herd.podAnnotations" $root | nindent 8 }}
    spec:
      {{- $mounts := list (dict "name" "data" "mountPath" .path) -}}
      {{- include "herd.podSpec" (dict "root" $root "component" .component "kind" .kind "values" .values "dirs" (dict .dirEnv .path) "mounts" $mounts) | nindent 6 }}
  volumeClaimTemplates:
    - metadata:
        name: data
        labels:
          {{- include "herd.selectorLabels" $selector | nindent 10 }}
      spec:
        accessModes:
          {{- toYaml .values.persistence.accessModes | nindent 10 }}
        {{- with .values.persistence.storageClass }}
        storageClassName: {{ . }}
        {{- end }}
        resources:
          requests:
            storage: {{ .values.persistence.size }}
{{- end -}}
