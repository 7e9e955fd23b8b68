{{/* Names and labels ------------------------------------------------------------------------- */}}

{{- define "prompt2pic.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "prompt2pic.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "prompt2pic.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "prompt2pic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: prompt2pic
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "bot") */}}
{{- define "prompt2pic.selectorLabels" -}}
app.kubernetes.io/name: {{ include "prompt2pic.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "prompt2pic.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "prompt2pic.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Image of a component: (dict "root" $ "image" .Values.bot.image). A digest (what
     scripts/release.sh pushed and signed) wins over the tag: `repo@sha256:...` is the one image
     that was tested and signed, while a tag can be pushed over. A malformed digest stops the render. */}}
{{- define "prompt2pic.image" -}}
{{- $repo := .image.repository -}}
{{- with .root.Values.image.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .) $repo -}}
{{- end -}}
{{- $digest := .image.digest | default "" | toString -}}
{{- if $digest -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" $digest) -}}
{{- fail (printf "the image digest of %s must be sha256: and 64 lowercase hex digits (as release-digests.env has it), not %q" .image.repository $digest) -}}
{{- end -}}
{{- printf "%s@%s" $repo $digest -}}
{{- else -}}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- printf "%s:%s" $repo (toString $tag) -}}
{{- end -}}
{{- end -}}

{{/* Secrets ----------------------------------------------------------------------------------- */}}

{{/* Name of the Secret that holds a group's keys: (dict "root" $ "own" .Values.s3.existingSecret) */}}
{{- define "prompt2pic.secretName" -}}
{{- .own | default .root.Values.secrets.existingSecret | default (printf "%s-secrets" (include "prompt2pic.fullname" .root)) -}}
{{- end -}}

{{/* One env entry read from the Secret: (dict "root" $ "env" "S3_SECRET_ACCESS_KEY" "key" "s3SecretAccessKey" "own" "") */}}
{{- define "prompt2pic.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ include "prompt2pic.secretName" (dict "root" .root "own" .own) }}
      key: {{ index .root.Values.secrets.keys .key }}
{{- end -}}

{{/* App settings -------------------------------------------------------------------------------- */}}

{{/* A setting's value as the string the app reads: whole numbers without an exponent, maps and
     lists as JSON (QUALITY_PROFILES, SECONDS_PER_IMAGE). */}}
{{- define "prompt2pic.envValue" -}}
{{- $v := . -}}
{{- if or (kindIs "map" $v) (kindIs "slice" $v) -}}
{{- toJson $v -}}
{{- else if and (kindIs "float64" $v) (eq (float64 (int64 $v)) $v) -}}
{{- printf "%d" (int64 $v) -}}
{{- else -}}
{{- toString $v -}}
{{- end -}}
{{- end -}}

{{/* Settings the chart sets from its structured values: (name: where to set it). */}}
{{- define "prompt2pic.managedSettings" -}}
HTTP_HOST: httpPort (the chart listens on 0.0.0.0)
HTTP_PORT: httpPort
QUEUE_BACKEND: kafka (always)
STORAGE_BACKEND: s3 (always)
SHUTDOWN_GRACE_S: bot.shutdownGraceSeconds, cpuWorker/gpuWorker.shutdownGraceSeconds
KAFKA_BOOTSTRAP_SERVERS: kafka.bootstrapServers
KAFKA_REQUESTS_TOPIC: kafka.requestsTopic
KAFKA_RESULTS_TOPIC: kafka.resultsTopic
KAFKA_DEAD_LETTER_TOPIC: kafka.deadLetterTopic
KAFKA_PARTITIONS: kafka.partitions
KAFKA_REPLICATION_FACTOR: kafka.replicationFactor
KAFKA_WORKER_GROUP: kafka.workerGroup
KAFKA_BOT_GROUP: kafka.botGroup
KAFKA_MAX_POLL_INTERVAL_MS: cpuWorker/gpuWorker.maxPollIntervalMs
S3_ENDPOINT_URL: s3.endpointUrl
S3_PUBLIC_ENDPOINT_URL: s3.publicEndpointUrl
S3_BUCKET: s3.bucket
S3_REGION: s3.region
S3_EXPIRE_DAYS: s3.expireDays
TELEGRAM_MODE: webhook (always)
TELEGRAM_WEBHOOK_URL: bot.webhook.host and bot.webhook.path
TELEGRAM_WEBHOOK_PATH: bot.webhook.path
MAX_BATCH: cpuWorker/gpuWorker.maxBatch
GENERATOR_DEVICE: cpu for cpuWorker, cuda for gpuWorker
{{- end -}}

{{/* Secret settings: never in `config`, only from the Secret. */}}
{{- define "prompt2pic.secretSettings" -}}
TELEGRAM_BOT_TOKEN: secrets (key telegramBotToken)
TELEGRAM_WEBHOOK_SECRET: secrets (key telegramWebhookSecret)
S3_ACCESS_KEY_ID: secrets (keys s3AccessKeyId for the workers, s3BotAccessKeyId for the bot)
S3_SECRET_ACCESS_KEY: secrets (keys s3SecretAccessKey for the workers, s3BotSecretAccessKey for the bot)
LINK_SIGNING_KEY: not used (the chart stores images in S3, which signs its own links)
KAFKA_SASL_USERNAME: secrets (keys kafkaBotUsername, kafkaWorkerUsername)
KAFKA_SASL_PASSWORD: secrets (keys kafkaBotPassword, kafkaWorkerPassword)
DATABASE_URL: secrets (key databaseUrl)
DATABASE_PASSWORD: not used (the password is part of DATABASE_URL in the Secret)
JOB_ID_SECRET: not set (derived from the bot token, so every bot pod makes the same job ids)
{{- end -}}

{{/* The `config` entries of one container, global ones overridden by the component's:
     (dict "root" $ "config" .Values.bot.config) */}}
{{- define "prompt2pic.configEnv" -}}
{{- $merged := merge (deepCopy (.config | default dict)) (deepCopy (.root.Values.config | default dict)) -}}
{{- range $name := keys $merged | sortAlpha }}
- name: {{ $name }}
  value: {{ include "prompt2pic.envValue" (index $merged $name) | quote }}
{{- end -}}
{{- end -}}

{{/* Secret names of one role's credentials: (dict "root" $ "role" "bot"|"worker") -> YAML map
     with kafka and s3 (each falls back to its group's Secret, then secrets.existingSecret). */}}
{{- define "prompt2pic.roleSecrets" -}}
{{- $v := .root.Values -}}
{{- $bot := eq .role "bot" -}}
kafka: {{ include "prompt2pic.secretName" (dict "root" .root "own" ((ternary $v.kafka.sasl.botExistingSecret $v.kafka.sasl.workerExistingSecret $bot) | default $v.kafka.sasl.existingSecret)) | quote }}
s3: {{ include "prompt2pic.secretName" (dict "root" .root "own" ((ternary $v.s3.botExistingSecret "" $bot) | default $v.s3.existingSecret)) | quote }}
{{- end -}}

{{/* One env entry from a named Secret: (dict "root" $ "env" NAME "key" KEY "secret" SECRET) */}}
{{- define "prompt2pic.secretEnvFrom" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ index .root.Values.secrets.keys .key }}
{{- end -}}

{{/* Settings every app container gets (queue, storage, HTTP), with the credentials of its role:
     (dict "root" $ "role" "bot"|"worker"). The bot's S3 key only reads; each role has its own
     Kafka user (docs/deploy-kubernetes.md, "Least privilege"). */}}
{{- define "prompt2pic.commonEnv" -}}
{{- $v := .root.Values -}}
{{- $root := .root -}}
{{- $bot := eq .role "bot" -}}
{{- $secrets := include "prompt2pic.roleSecrets" . | fromYaml -}}
- name: HTTP_HOST
  value: "0.0.0.0"
- name: HTTP_PORT
  value: {{ include "prompt2pic.envValue" $v.httpPort | quote }}
- name: QUEUE_BACKEND
  value: kafka
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ $v.kafka.bootstrapServers | quote }}
- name: KAFKA_REQUESTS_TOPIC
  value: {{ $v.kafka.requestsTopic | quote }}
- name: KAFKA_RESULTS_TOPIC
  value: {{ $v.kafka.resultsTopic | quote }}
- name: KAFKA_DEAD_LETTER_TOPIC
  value: {{ $v.kafka.deadLetterTopic | quote }}
- name: KAFKA_PARTITIONS
  value: {{ include "prompt2pic.envValue" $v.kafka.partitions | quote }}
- name: KAFKA_REPLICATION_FACTOR
  value: {{ include "prompt2pic.envValue" $v.kafka.replicationFactor | quote }}
- name: KAFKA_WORKER_GROUP
  value: {{ $v.kafka.workerGroup | quote }}
- name: KAFKA_BOT_GROUP
  value: {{ $v.kafka.botGroup | quote }}
{{- if and $v.kafka.sasl.enabled $v.kafka.sasl.passToApp }}
{{- /* The app's producer, consumers and admin client speak SASL with these. */}}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ ternary "SASL_SSL" "SASL_PLAINTEXT" $v.kafka.sasl.tls | quote }}
- name: KAFKA_SASL_MECHANISM
  value: {{ $v.kafka.sasl.mechanism | quote }}
{{ include "prompt2pic.secretEnvFrom" (dict "root" $root "env" "KAFKA_SASL_USERNAME" "key" (ternary "kafkaBotUsername" "kafkaWorkerUsername" $bot) "secret" $secrets.kafka) }}
{{ include "prompt2pic.secretEnvFrom" (dict "root" $root "env" "KAFKA_SASL_PASSWORD" "key" (ternary "kafkaBotPassword" "kafkaWorkerPassword" $bot) "secret" $secrets.kafka) }}
{{- end }}
- name: STORAGE_BACKEND
  value: s3
- name: S3_ENDPOINT_URL
  value: {{ $v.s3.endpointUrl | quote }}
- name: S3_PUBLIC_ENDPOINT_URL
  value: {{ $v.s3.publicEndpointUrl | quote }}
- name: S3_BUCKET
  value: {{ $v.s3.bucket | quote }}
- name: S3_REGION
  value: {{ $v.s3.region | quote }}
- name: S3_EXPIRE_DAYS
  value: {{ include "prompt2pic.envValue" $v.s3.expireDays | quote }}
{{ include "prompt2pic.secretEnvFrom" (dict "root" $root "env" "S3_ACCESS_KEY_ID" "key" (ternary "s3BotAccessKeyId" "s3AccessKeyId" $bot) "secret" $secrets.s3) }}
{{ include "prompt2pic.secretEnvFrom" (dict "root" $root "env" "S3_SECRET_ACCESS_KEY" "key" (ternary "s3BotSecretAccessKey" "s3SecretAccessKey" $bot) "secret" $secrets.s3) }}
{{- end -}}

{{/* Pod and container hardening ---------------------------------------------------------------- */}}

{{- define "prompt2pic.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ int64 .Values.podSecurity.uid }}
runAsGroup: {{ int64 .Values.podSecurity.gid }}
fsGroup: {{ int64 .Values.podSecurity.gid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "prompt2pic.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ int64 .Values.podSecurity.uid }}
runAsGroup: {{ int64 .Values.podSecurity.gid }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Probes on the app's HTTP endpoint: (dict "root" $ "startupSeconds" N) */}}
{{- define "prompt2pic.probes" -}}
{{- $p := .root.Values.probes -}}
startupProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: {{ int64 $p.periodSeconds }}
  timeoutSeconds: {{ int64 $p.timeoutSeconds }}
  failureThreshold: {{ max 1 (ceil (divf .startupSeconds $p.periodSeconds)) | int64 }}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ int64 $p.periodSeconds }}
  timeoutSeconds: {{ int64 $p.timeoutSeconds }}
  failureThreshold: {{ int64 $p.livenessFailureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: {{ int64 $p.periodSeconds }}
  timeoutSeconds: {{ int64 $p.timeoutSeconds }}
  failureThreshold: {{ int64 $p.readinessFailureThreshold }}
{{- end -}}

{{/* Writable folders: /app/data and /tmp always, /cache as given. */}}
{{- define "prompt2pic.scratchMounts" -}}
- name: data
  mountPath: /app/data
- name: tmp
  mountPath: /tmp
- name: cache
  mountPath: /cache
{{- end -}}

{{- define "prompt2pic.scratchVolumes" -}}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.scratch.dataSizeLimit }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.scratch.tmpSizeLimit }}
{{- end -}}
