{{/* Names and labels. */}}
{{- define "baton.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "baton.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: dict "root" $ "component" "worker-llm". */}}
{{- define "baton.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "baton.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "baton.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "baton.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- with .Values.image.digest }}@{{ . }}{{ end -}}
{{- end -}}

{{/* Annotations of a workload: why a scanner's digest check is waived when no digest is set. */}}
{{- define "baton.workloadAnnotations" -}}
{{- if not .Values.image.digest }}
annotations:
  checkov.io/skip1: CKV_K8S_43=no image.digest set; the tag is pulled on every start (pullPolicy Always). Set image.digest in production.
{{- end }}
{{- end -}}

{{/* A component's autoscaling: the chart-wide block, overridden by the component's own
(`enabled` set apart: merge treats false as unset). */}}
{{- define "baton.autoscaling" -}}
{{- $own := .spec.autoscaling | default dict -}}
{{- $merged := merge (deepCopy $own) (deepCopy .root.Values.autoscaling) -}}
{{- $_ := set $merged "enabled" (ternary $own.enabled .root.Values.autoscaling.enabled (hasKey $own "enabled")) -}}
{{- toYaml $merged -}}
{{- end -}}

{{/* The environment every Baton container gets: settings only; secrets are files (baton.volumes). */}}
{{- define "baton.env" -}}
- name: BATON_TEMPORAL_ADDRESS
  value: {{ .Values.temporal.address | quote }}
- name: BATON_TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
{{- with .Values.temporal.uiUrl }}
- name: BATON_TEMPORAL_UI_URL
  value: {{ . | quote }}
{{- end }}
{{- if .Values.temporal.tls.enabled }}
- name: BATON_TEMPORAL_TLS
  value: "true"
{{- if .Values.temporal.tls.existingSecret }}
- name: BATON_TEMPORAL_TLS_CERT
  value: /etc/baton/temporal-tls/tls.crt
- name: BATON_TEMPORAL_TLS_KEY
  value: /etc/baton/temporal-tls/tls.key
{{- end }}
{{- end }}
- name: BATON_WORKFLOWS_QUEUE
  value: {{ .Values.queues.workflows | quote }}
{{- with .Values.queues.steps }}
- name: BATON_STEPS_QUEUE
  value: {{ . | quote }}
{{- end }}
- name: BATON_LLM_QUEUE
  value: {{ .Values.queues.llm | quote }}
- name: BATON_COMPLIANCE_QUEUE
  value: {{ .Values.queues.compliance | quote }}
- name: BATON_DATABASE_POOL_SIZE
  value: {{ .Values.database.poolSize | quote }}
- name: BATON_SECRETS_DIR
  value: /etc/baton/secrets
- name: BATON_KEYS_DIR
  value: /etc/baton/keys
{{- if .Values.agentsConfigMap }}
- name: BATON_AGENT_DIRS
  value: '["/etc/baton/agents"]'
{{- end }}
{{- range $name, $value := .Values.config }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* Secret settings as files named after them (BATON_SECRETS_DIR), never as variables. */}}
{{- define "baton.secretSources" -}}
- secret:
    name: {{ .Values.database.existingSecret }}
    items:
      - {key: {{ .Values.database.key | quote }}, path: baton_database_url}
{{- with .Values.redis.existingSecret }}
- secret:
    name: {{ . }}
    items:
      - {key: {{ $.Values.redis.key | quote }}, path: baton_redis_url}
{{- end }}
{{- with .Values.temporal.apiKey.existingSecret }}
- secret:
    name: {{ . }}
    items:
      - {key: {{ $.Values.temporal.apiKey.key | quote }}, path: baton_temporal_api_key}
{{- end }}
{{- range .Values.secretSettings }}
- secret:
    name: {{ .secretName }}
    items:
      - {key: {{ .key | quote }}, path: {{ lower .setting }}}
{{- end }}
{{- end -}}

{{- define "baton.volumes" -}}
- name: tmp
  emptyDir: {}
- name: data
  emptyDir: {}
- name: secrets
  projected:
    defaultMode: 0400
    sources:
      {{- include "baton.secretSources" . | nindent 6 }}
- name: keys
{{- if .Values.encryptionKeys.secretProviderClass }}
  csi:
    driver: secrets-store.csi.k8s.io
    readOnly: true
    volumeAttributes:
      secretProviderClass: {{ .Values.encryptionKeys.secretProviderClass }}
{{- else }}
  secret:
    secretName: {{ .Values.encryptionKeys.existingSecret }}
    defaultMode: 0400
{{- end }}
{{- if and .Values.temporal.tls.enabled .Values.temporal.tls.existingSecret }}
- name: temporal-tls
  secret:
    secretName: {{ .Values.temporal.tls.existingSecret }}
    defaultMode: 0400
{{- end }}
{{- with .Values.agentsConfigMap }}
- name: agents
  configMap:
    name: {{ . }}
{{- end }}
{{- end -}}

{{- define "baton.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/baton
- name: secrets
  mountPath: /etc/baton/secrets
  readOnly: true
- name: keys
  mountPath: /etc/baton/keys
  readOnly: true
{{- if and .Values.temporal.tls.enabled .Values.temporal.tls.existingSecret }}
- name: temporal-tls
  mountPath: /etc/baton/temporal-tls
  readOnly: true
{{- end }}
{{- if .Values.agentsConfigMap }}
- name: agents
  mountPath: /etc/baton/agents
  readOnly: true
{{- end }}
{{- end -}}

{{/*
One Deployment: dict "root" $ "component" NAME "spec" VALUES "args" LIST "port" N
"readiness" PATH "env" LIST (extra variables) "grace" SECONDS "keda" BOOL (KEDA sets replicas).
*/}}
{{- define "baton.deployment" -}}
{{- $root := .root -}}
{{- $name := printf "%s-%s" (include "baton.fullname" $root) .component -}}
{{- $autoscaling := include "baton.autoscaling" . | fromYaml -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "baton.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  {{- include "baton.workloadAnnotations" $root | nindent 2 }}
spec:
  {{- if not (or $autoscaling.enabled .keda) }}
  replicas: {{ .spec.replicas | default 1 }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "baton.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "baton.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $root.Values.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "baton.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ .grace | default 30 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: baton
          image: {{ include "baton.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            {{- toYaml .args | nindent 12 }}
          ports:
            - name: http
              containerPort: {{ .port }}
              protocol: TCP
          env:
            {{- include "baton.env" $root | nindent 12 }}
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            initialDelaySeconds: 10
            periodSeconds: 15
            timeoutSeconds: 3
            failureThreshold: 4
          readinessProbe:
            httpGet:
              path: {{ .readiness }}
              port: http
            initialDelaySeconds: 5
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          resources:
            {{- toYaml (.spec.resources | default $root.Values.resources) | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            {{- include "baton.volumeMounts" $root | nindent 12 }}
      volumes:
        {{- include "baton.volumes" $root | nindent 8 }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

{{/* The HPA of one component (the same dict as baton.deployment), when it autoscales on CPU
and memory (a worker role scaled by KEDA has KEDA's instead). */}}
{{- define "baton.hpa" -}}
{{- $autoscaling := include "baton.autoscaling" . | fromYaml -}}
{{- if and $autoscaling.enabled (not .keda) }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "baton.fullname" .root }}-{{ .component }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "baton.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "baton.fullname" .root }}-{{ .component }}
  minReplicas: {{ $autoscaling.minReplicas }}
  maxReplicas: {{ $autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $autoscaling.targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ $autoscaling.targetMemoryUtilizationPercentage }}
  {{- with $autoscaling.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}

{{- define "baton.pdb" -}}
{{- if .root.Values.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "baton.fullname" .root }}-{{ .component }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "baton.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  maxUnavailable: {{ .root.Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "baton.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}
