{{/* Names and labels shared by every object of the release. */}}
{{- define "relay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "relay.fullname" -}}
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

{{/* Selector labels: (list $ component instanceName) */}}
{{- define "relay.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "relay.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- if index . 2 }}
relay.io/member: {{ index . 2 | quote }}
{{- end }}
{{- end -}}

{{/* All labels: (list $ component instanceName) */}}
{{- define "relay.labels" -}}
{{- $root := index . 0 -}}
{{ include "relay.selectorLabels" . }}
app.kubernetes.io/part-of: relay
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "relay.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The ChainConfig of a chain, by name: (list $ chainName). Fails when the chain is not declared. */}}
{{- define "relay.chain" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $found := dict -}}
{{- range $root.Values.chains -}}
{{- if eq .name $name -}}{{- $found = . -}}{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "chain %q is referenced but not declared in .Values.chains" $name) -}}
{{- end -}}
{{- toYaml $found -}}
{{- end -}}

{{/* Name of the Secret holding a member's key: (list $ kind member) */}}
{{- define "relay.keySecretName" -}}
{{- $root := index . 0 -}}
{{- $member := index . 2 -}}
{{- if $member.key.existingSecret -}}
{{- $member.key.existingSecret -}}
{{- else if $member.key.value -}}
{{- printf "%s-%s-%s-key" (include "relay.fullname" $root) (index . 1) $member.name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- fail (printf "%s %q: set key.existingSecret (or key.value for devnets)" (index . 1) $member.name) -}}
{{- end -}}
{{- end -}}

{{/*
Name of the kubernetes.io/tls Secret (ca.crt, tls.crt, tls.key) of a workload: (list $ kind member),
member being the attestors[]/submitters[] entry, or .Values.relayer for the relayer. Its `tlsSecret`
when set, else "<fullname>-<kind>-<name>-tls" ("<fullname>-relayer-tls"): the name the chart's
cert-manager Certificate writes (tls.certManager).
*/}}
{{- define "relay.tlsSecretName" -}}
{{- $root := index . 0 -}}
{{- $kind := index . 1 -}}
{{- $member := index . 2 -}}
{{- if $member.tlsSecret -}}
{{- $member.tlsSecret -}}
{{- else if eq $kind "relayer" -}}
{{- printf "%s-relayer-tls" (include "relay.fullname" $root) | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s-%s-tls" (include "relay.fullname" $root) $kind $member.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The `tls:` (or `insecure_plaintext`) lines of a role's config.yaml, from .Values.tls. */}}
{{- define "relay.tlsConfig" -}}
{{- if .Values.tls.enabled -}}
tls:
  ca: {{ printf "%s/ca.crt" .Values.tls.mountPath | quote }}
  cert: {{ printf "%s/tls.crt" .Values.tls.mountPath | quote }}
  key: {{ printf "%s/tls.key" .Values.tls.mountPath | quote }}
{{- else -}}
# tls.enabled=false: plaintext gRPC, development clusters only.
insecure_plaintext: true
{{- end -}}
{{- end -}}

{{- define "relay.keySecretKey" -}}
{{- .key.secretKey | default "key" -}}
{{- end -}}

{{/* In-cluster gRPC address of an attestor or submitter: (list $ kind name) */}}
{{- define "relay.memberAddress" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s-%s.%s.svc:%v" (include "relay.fullname" $root) (index . 1) (index . 2) $root.Release.Namespace $root.Values.ports.grpc -}}
{{- end -}}

{{/*
The pod spec shared by every role: (dict "root" $ "role" "attestor" "member" "alpha-0" "configMap" name
"keySecret" name-or-empty "keyFile" entry "tlsSecret" name "resources" {...} "extraVolumes" [...]
"extraMounts" [...] "extraPorts" [...] "extraEnv" [...] "affinity" {...} (default .Values.affinity))
*/}}
{{- define "relay.podSpec" -}}
{{- $root := .root -}}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
containers:
  - name: {{ .role }}
    image: {{ include "relay.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args: [{{ .role | quote }}, "--config", "/etc/relay/config.yaml"]
    env:
      - name: RELAY_LOG_LEVEL
        value: {{ $root.Values.logLevel | quote }}
      {{- with .extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    ports:
      - {name: grpc, containerPort: {{ $root.Values.ports.grpc }}, protocol: TCP}
      - {name: http, containerPort: {{ $root.Values.ports.http }}, protocol: TCP}
      {{- with .extraPorts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    livenessProbe:
      httpGet: {path: /healthz, port: http}
      {{- toYaml $root.Values.probes.liveness | nindent 6 }}
    readinessProbe:
      httpGet: {path: /readyz, port: http}
      {{- toYaml $root.Values.probes.readiness | nindent 6 }}
    securityContext:
      {{- toYaml $root.Values.securityContext | nindent 6 }}
    resources:
      {{- toYaml .resources | nindent 6 }}
    volumeMounts:
      - {name: config, mountPath: /etc/relay, readOnly: true}
      - {name: tmp, mountPath: /tmp}
      {{- if .keySecret }}
      - {name: key, mountPath: /etc/relay-keys, readOnly: true}
      {{- end }}
      {{- if $root.Values.tls.enabled }}
      - {name: tls, mountPath: {{ $root.Values.tls.mountPath }}, readOnly: true}
      {{- end }}
      {{- with .extraMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  - name: config
    configMap: {name: {{ .configMap }}}
  - name: tmp
    emptyDir: {sizeLimit: 64Mi}
  {{- if .keySecret }}
  - name: key
    secret:
      secretName: {{ .keySecret }}
      defaultMode: 0440
      items: [{key: {{ .keyFile | quote }}, path: {{ .keyFile | quote }}}]
  {{- end }}
  {{- if $root.Values.tls.enabled }}
  # cert-manager's keys; root-owned and group-readable for fsGroup (the roles accept 0440 for root).
  - name: tls
    secret:
      secretName: {{ .tlsSecret }}
      defaultMode: 0440
      items:
        - {key: ca.crt, path: ca.crt}
        - {key: tls.crt, path: tls.crt}
        - {key: tls.key, path: tls.key}
  {{- end }}
  {{- with .extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (.affinity | default $root.Values.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* "true" when the relayer's store is PostgreSQL (relayer.store.postgres.dsnSecret.name set), else "". */}}
{{- define "relay.relayerPostgres" -}}
{{- if ((((.Values.relayer.store | default dict).postgres | default dict).dsnSecret | default dict).name) -}}true{{- end -}}
{{- end -}}

{{/*
The number of relayer pods: relayer.replicas, else 1 (SQLite) or 2 (PostgreSQL). Fails for more
than one with SQLite: the store is a file on a ReadWriteOnce volume, and a second writer would
relay every message twice over (replay protection on the Gateway would be the only line left).
*/}}
{{- define "relay.relayerReplicas" -}}
{{- $postgres := include "relay.relayerPostgres" . -}}
{{- $replicas := .Values.relayer.replicas -}}
{{- if kindIs "invalid" $replicas -}}
{{- $replicas = ternary 2 1 (eq $postgres "true") -}}
{{- end -}}
{{- if and (not $postgres) (gt (int $replicas) 1) -}}
{{- fail (printf "relayer.replicas=%v needs a shared store: set relayer.store.postgres.dsnSecret (PostgreSQL), or keep 1 replica with SQLite" $replicas) -}}
{{- end -}}
{{- int $replicas -}}
{{- end -}}
