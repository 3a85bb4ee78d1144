{{/*
Expand the name of the chart.
*/}}
{{- define "pmem-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "pmem-service.fullname" -}}
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

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "pmem-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "pmem-service.labels" -}}
helm.sh/chart: {{ include "pmem-service.chart" . }}
{{ include "pmem-service.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels
*/}}
{{- define "pmem-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pmem-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "pmem-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pmem-service.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from a values block {registry, repository, tag, digest} (dict "image" X "root" $).
The tag defaults to the chart's appVersion; a digest wins over the tag.
*/}}
{{- define "pmem-service.imageRef" -}}
{{- $img := .image }}
{{- $repo := $img.repository }}
{{- if $img.registry }}
{{- $repo = printf "%s/%s" $img.registry $img.repository }}
{{- end }}
{{- if $img.digest }}
{{- printf "%s@%s" $repo $img.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion $img.tag | toString) }}
{{- end }}
{{- end }}

{{/*
Full path of the Unix socket inside the containers.
*/}}
{{- define "pmem-service.socketPath" -}}
{{- printf "%s/%s" (trimSuffix "/" .Values.socket.dir) .Values.socket.name }}
{{- end }}

{{/*
Names of the PersistentVolume (cluster-scoped, so the namespace is part of it) and the claim.
*/}}
{{- define "pmem-service.pvName" -}}
{{- printf "%s-%s-pmem" (include "pmem-service.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pmem-service.pvcName" -}}
{{- if and (eq .Values.pmem.volume.type "pvc") .Values.pmem.volume.pvc.existingClaim }}
{{- .Values.pmem.volume.pvc.existingClaim }}
{{- else }}
{{- printf "%s-pmem" (include "pmem-service.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
Fail early on combinations the schema cannot express well.
*/}}
{{- define "pmem-service.validate" -}}
{{- if and (eq .Values.mode "daemonset") (not (has .Values.pmem.volume.type (list "hostPath" "csiEphemeral"))) }}
{{- fail "mode=daemonset needs a per-node PMEM volume: set pmem.volume.type to hostPath or csiEphemeral" }}
{{- end }}
{{- end }}

{{/*
The PMEM volume of the pod (named "pmem").
*/}}
{{- define "pmem-service.pmemVolume" -}}
{{- $v := .Values.pmem.volume }}
- name: pmem
{{- if eq $v.type "csiEphemeral" }}
  csi:
    driver: {{ $v.csiEphemeral.driver }}
    fsType: {{ $v.csiEphemeral.fsType }}
    volumeAttributes:
      size: {{ $v.csiEphemeral.size | quote }}
      {{- range $key, $value := $v.csiEphemeral.volumeAttributes }}
      {{ $key }}: {{ $value | quote }}
      {{- end }}
{{- else if eq $v.type "hostPath" }}
  hostPath:
    path: {{ $v.hostPath.path }}
    type: {{ $v.hostPath.type }}
{{- else }}
  persistentVolumeClaim:
    claimName: {{ include "pmem-service.pvcName" . }}
{{- end }}
{{- end }}

{{/*
The socket volume (named "pmem-socket"): an in-memory emptyDir shared inside the pod, or a host
directory shared by every pod on the node (daemonset mode).
*/}}
{{- define "pmem-service.socketVolume" -}}
- name: pmem-socket
{{- if eq .Values.mode "daemonset" }}
  hostPath:
    path: {{ .Values.socket.hostPath }}
    type: DirectoryOrCreate
{{- else }}
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.socket.sizeLimit }}
{{- end }}
{{- end }}

{{/*
Root init container that prepares hostPath directories for the non-root service (volumePermissions).
*/}}
{{- define "pmem-service.volumePermissionsContainer" -}}
{{- $dirs := list }}
{{- if eq .Values.mode "daemonset" }}
{{- $dirs = append $dirs "/prepare/socket" }}
{{- end }}
{{- if eq .Values.pmem.volume.type "hostPath" }}
{{- $dirs = append $dirs "/prepare/pmem" }}
{{- end }}
{{- if and .Values.volumePermissions.enabled $dirs }}
- name: volume-permissions
  image: {{ include "pmem-service.imageRef" (dict "image" .Values.volumePermissions.image "root" .) }}
  imagePullPolicy: {{ .Values.volumePermissions.image.pullPolicy }}
  command:
    - /bin/sh
    - -ec
    - |
      for d in {{ join " " $dirs }}; do
        chown {{ .Values.podSecurityContext.runAsUser }}:{{ .Values.podSecurityContext.fsGroup }} "$d"
        chmod 0770 "$d"
      done
  securityContext:
    runAsNonRoot: false
    runAsUser: 0
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities:
      drop:
        - ALL
      add:
        - CHOWN
        - FOWNER
    seccompProfile:
      type: RuntimeDefault
  volumeMounts:
    {{- if eq .Values.mode "daemonset" }}
    - name: pmem-socket
      mountPath: /prepare/socket
    {{- end }}
    {{- if eq .Values.pmem.volume.type "hostPath" }}
    - name: pmem
      mountPath: /prepare/pmem
    {{- end }}
{{- end }}
{{- end }}

{{/*
The PmemService container. As a native sidecar it carries restartPolicy: Always (dict "root" $ "sidecar" bool).
*/}}
{{- define "pmem-service.serviceContainer" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
- name: pmem-service
  image: {{ include "pmem-service.imageRef" (dict "image" $v.image "root" $root) }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if .sidecar }}
  restartPolicy: Always
  {{- end }}
  ports:
    - name: grpc
      containerPort: {{ $v.grpc.port }}
      protocol: TCP
    {{- if $v.metrics.enabled }}
    - name: metrics
      containerPort: {{ $v.metrics.port }}
      protocol: TCP
    {{- end }}
  env:
    - name: ASPNETCORE_ENVIRONMENT
      value: {{ $v.config.environment | quote }}
    - name: DOTNET_SHUTDOWNTIMEOUTSECONDS
      value: {{ $v.config.shutdownTimeoutSeconds | quote }}
    - name: PmemService__PoolPath
      value: {{ $v.pmem.mountPath | quote }}
    - name: PmemService__UnixSocketPath
      value: {{ include "pmem-service.socketPath" $root | quote }}
    - name: PmemService__UnixSocketMode
      value: {{ $v.config.unixSocketMode | quote }}
    - name: PmemService__TcpEndpoint
      value: {{ printf "0.0.0.0:%d" (int $v.grpc.port) | quote }}
    - name: PmemService__RequireDax
      value: {{ $v.config.requireDax | quote }}
    - name: PmemService__EnableReflection
      value: {{ $v.config.enableReflection | quote }}
    - name: PmemService__AllowDataPlaneOverTcp
      value: {{ $v.config.allowDataPlaneOverTcp | quote }}
    {{- if $v.config.maxRegionSize }}
    - name: PmemService__MaxRegionSize
      value: {{ $v.config.maxRegionSize | int64 | quote }}
    {{- end }}
    {{- if $v.config.maxMappedBytes }}
    - name: PmemService__MaxMappedBytes
      value: {{ $v.config.maxMappedBytes | int64 | quote }}
    {{- end }}
    - name: PmemService__RegionAccess
      value: {{ $v.config.regionAccess | quote }}
    - name: PmemService__RootIsRegionSuperuser
      value: {{ $v.config.rootIsRegionSuperuser | quote }}
    {{- if $v.config.zeroFillOnCreate }}
    - name: PmemService__ZeroFillOnCreate
      value: "true"
    {{- end }}
    {{- if $v.config.maxRegionsPerIdentity }}
    - name: PmemService__MaxRegionsPerIdentity
      value: {{ $v.config.maxRegionsPerIdentity | int64 | quote }}
    {{- end }}
    {{- if $v.config.maxMappedBytesPerIdentity }}
    - name: PmemService__MaxMappedBytesPerIdentity
      value: {{ $v.config.maxMappedBytesPerIdentity | int64 | quote }}
    {{- end }}
    - name: Serilog__MinimumLevel__Default
      value: {{ $v.config.logLevel | quote }}
    - name: K8S_NODE_NAME
      valueFrom:
        fieldRef:
          fieldPath: spec.nodeName
    {{- if $v.metrics.enabled }}
    - name: PmemService__MetricsEndpoint
      value: {{ printf "0.0.0.0:%d" (int $v.metrics.port) | quote }}
    {{- end }}
    {{- if $v.config.otlpEndpoint }}
    - name: OTEL_EXPORTER_OTLP_ENDPOINT
      value: {{ $v.config.otlpEndpoint | quote }}
    - name: OTEL_SERVICE_NAME
      value: {{ include "pmem-service.name" $root | quote }}
    - name: OTEL_RESOURCE_ATTRIBUTES
      value: "k8s.node.name=$(K8S_NODE_NAME)"
    {{- end }}
    {{- with $v.tcpAuthentication }}
    {{- if .tlsSecret }}
    - name: PmemService__TcpAuthentication__ServerCertificatePath
      value: /var/run/pmem-tls/tls.crt
    - name: PmemService__TcpAuthentication__ServerKeyPath
      value: /var/run/pmem-tls/tls.key
    {{- end }}
    {{- if .clientCaSecret }}
    - name: PmemService__TcpAuthentication__ClientCaPath
      value: /var/run/pmem-client-ca/ca.crt
    {{- end }}
    {{- if .jwtKeysSecret }}
    - name: PmemService__TcpAuthentication__JwtKeysPath
      value: /var/run/pmem-jwt-keys
    {{- if .jwtIssuer }}
    - name: PmemService__TcpAuthentication__JwtIssuer
      value: {{ .jwtIssuer | quote }}
    {{- end }}
    {{- if .jwtAudience }}
    - name: PmemService__TcpAuthentication__JwtAudience
      value: {{ .jwtAudience | quote }}
    {{- end }}
    {{- end }}
    {{- end }}
    {{- with $v.config.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if $v.probes.startup.enabled }}
  startupProbe:
    {{- if $v.tcpAuthentication.tlsSecret }}
    exec:
      command: ["/app/PmemService", "health", "--address", {{ printf "unix:%s" (include "pmem-service.socketPath" $root) | quote }}, "--service", {{ $v.probes.startup.service | default "" | quote }}]
    {{- else }}
    grpc:
      port: {{ $v.grpc.port }}
      {{- if $v.probes.startup.service }}
      service: {{ $v.probes.startup.service }}
      {{- end }}
    {{- end }}
    periodSeconds: {{ $v.probes.startup.periodSeconds }}
    failureThreshold: {{ $v.probes.startup.failureThreshold }}
    timeoutSeconds: {{ $v.probes.startup.timeoutSeconds }}
  {{- end }}
  {{- if $v.probes.liveness.enabled }}
  livenessProbe:
    {{- if $v.tcpAuthentication.tlsSecret }}
    exec:
      command: ["/app/PmemService", "health", "--address", {{ printf "unix:%s" (include "pmem-service.socketPath" $root) | quote }}]
    {{- else }}
    grpc:
      port: {{ $v.grpc.port }}
    {{- end }}
    periodSeconds: {{ $v.probes.liveness.periodSeconds }}
    failureThreshold: {{ $v.probes.liveness.failureThreshold }}
    timeoutSeconds: {{ $v.probes.liveness.timeoutSeconds }}
  {{- end }}
  {{- if $v.probes.readiness.enabled }}
  readinessProbe:
    {{- if $v.tcpAuthentication.tlsSecret }}
    exec:
      command: ["/app/PmemService", "health", "--address", {{ printf "unix:%s" (include "pmem-service.socketPath" $root) | quote }}, "--service", "readiness"]
    {{- else }}
    grpc:
      port: {{ $v.grpc.port }}
      service: readiness
    {{- end }}
    periodSeconds: {{ $v.probes.readiness.periodSeconds }}
    failureThreshold: {{ $v.probes.readiness.failureThreshold }}
    timeoutSeconds: {{ $v.probes.readiness.timeoutSeconds }}
  {{- end }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: pmem
      mountPath: {{ $v.pmem.mountPath }}
    - name: pmem-socket
      mountPath: {{ $v.socket.dir }}
    - name: tmp
      mountPath: /tmp
    {{- if $v.tcpAuthentication.tlsSecret }}
    - name: pmem-tls
      mountPath: /var/run/pmem-tls
      readOnly: true
    {{- end }}
    {{- if $v.tcpAuthentication.clientCaSecret }}
    - name: pmem-client-ca
      mountPath: /var/run/pmem-client-ca
      readOnly: true
    {{- end }}
    {{- if $v.tcpAuthentication.jwtKeysSecret }}
    - name: pmem-jwt-keys
      mountPath: /var/run/pmem-jwt-keys
      readOnly: true
    {{- end }}
    {{- with $v.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
Secret volumes of TCP authentication (values tcpAuthentication). Mounted as directories (no subPath), so
an updated Secret reaches the running service: the JWT keys rotate without a restart.
*/}}
{{- define "pmem-service.tcpAuthenticationVolumes" -}}
{{- $t := .Values.tcpAuthentication }}
{{- if and (or $t.clientCaSecret $t.jwtKeysSecret) (not $t.tlsSecret) }}
{{- fail "tcpAuthentication.clientCaSecret / jwtKeysSecret need tcpAuthentication.tlsSecret: credentials never travel in plaintext" }}
{{- end }}
{{- if $t.tlsSecret }}
- name: pmem-tls
  secret:
    secretName: {{ $t.tlsSecret }}
{{- end }}
{{- if $t.clientCaSecret }}
- name: pmem-client-ca
  secret:
    secretName: {{ $t.clientCaSecret }}
{{- end }}
{{- if $t.jwtKeysSecret }}
- name: pmem-jwt-keys
  secret:
    secretName: {{ $t.jwtKeysSecret }}
{{- end }}
{{- end }}
