#!/usr/bin/env bash
# End-to-end test of recontext on real KubeVirt + CDI in a kind cluster (needs a Docker engine):
# two worker nodes in different zones and regions, the operator installed with the Helm chart, the
# GlusterFS example's VMContext on a small cirros VM; the VM live-migrates to the other zone and
# the script checks that recontext handled that migration and swapped the infrastructure layer.
# See README.md next to this file. Usage: test/e2e/kind/run.sh   (KEEP_CLUSTER=1 keeps it)
set -Eeuo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
# Versions: one definition for this script and the local cluster (test/cluster/versions.env).
# shellcheck source-path=SCRIPTDIR source=../../cluster/versions.env
source "${REPO_ROOT}/test/cluster/versions.env"
VM_IMAGE=quay.io/kubevirt/cirros-container-disk-demo:${KUBEVIRT_VERSION}
# E2E_MODE=registry (default): kind's and KubeVirt's published images, for a machine with internet.
# E2E_MODE=local: the cluster of `npm run cluster:up`, every image built on this machine.
E2E_MODE=${E2E_MODE:-registry}

CLUSTER_NAME=${CLUSTER_NAME:-recontext-e2e}
KEEP_CLUSTER=${KEEP_CLUSTER:-0}
OPERATOR_IMAGE=recontext:e2e
OPERATOR_NAMESPACE=recontext-system
NAMESPACE=recontext-e2e
VM=gluster-client-1
VMCONTEXT=gluster-client-1
# A host directory mounted at the same path in every node: local-path volumes on it are shared,
# so DataVolumes can be ReadWriteMany and the VM stays live-migratable.
SHARED_PATH=/var/local-path-shared

WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/recontext-e2e.XXXXXX")
export KUBECONFIG="${WORK_DIR}/kubeconfig" # the user's kubeconfig stays untouched
CLUSTER_CREATED=0

log() { printf '\n==> %s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  if ((CLUSTER_CREATED)); then dump_state; fi
  exit 1
}

# wait_until SECONDS DESCRIPTION COMMAND...: runs COMMAND every 5 s until it succeeds.
wait_until() {
  local timeout=$1 what=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      printf 'timed out after %ss waiting for %s\n' "$timeout" "$what" >&2
      return 1
    fi
    sleep 5
  done
}

exists() { kubectl get "$@" >/dev/null 2>&1; }

# On exit (the script's exit status stays that of the failure, if any).
cleanup() {
  if ((CLUSTER_CREATED)); then
    if [[ "$KEEP_CLUSTER" == 1 ]]; then
      log "keeping cluster ${CLUSTER_NAME} (KUBECONFIG=${KUBECONFIG}); delete it with: kind delete cluster --name ${CLUSTER_NAME}"
      return 0
    fi
    log "deleting cluster ${CLUSTER_NAME}"
    # The shared directory holds files the nodes wrote as root: remove them from inside a node.
    docker exec "${CLUSTER_NAME}-control-plane" sh -c "rm -rf ${SHARED_PATH:?}/*" >/dev/null 2>&1 || true
    kind delete cluster --name "$CLUSTER_NAME" || true
  fi
  rm -rf "$WORK_DIR" 2>/dev/null || printf 'note: could not remove %s\n' "$WORK_DIR" >&2
}
trap cleanup EXIT

dump_state() {
  printf '\nstate of the cluster:\n' >&2
  kubectl get nodes -L topology.kubernetes.io/zone,topology.kubernetes.io/region >&2 || true
  kubectl -n "$OPERATOR_NAMESPACE" get pods -L recontext.dev/leader >&2 || true
  kubectl -n "$NAMESPACE" get vm,vmi,vmim,datavolumes,pvc >&2 || true
  kubectl -n "$NAMESPACE" get vmcontext "$VMCONTEXT" -o yaml >&2 || true
  kubectl -n "$OPERATOR_NAMESPACE" logs -l app.kubernetes.io/name=recontext --tail=40 --prefix >&2 || true
}
on_error() {
  printf '\nerror: %s failed at line %s\n' "$(basename "$0")" "$1" >&2
  if ((CLUSTER_CREATED)); then dump_state; fi
}
trap 'on_error $LINENO' ERR

check_prerequisites() {
  local missing=0 tool
  for tool in docker kind kubectl helm virtctl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      printf 'missing prerequisite: %s\n' "$tool" >&2
      missing=1
    fi
  done
  if ((missing)); then
    cat >&2 <<EOF
This script needs docker (with a running engine), kind ${KIND_VERSION}, kubectl, helm 3 and
virtctl ${KUBEVIRT_VERSION} on PATH. Install hints:
  kind:    go install sigs.k8s.io/kind@${KIND_VERSION}
  virtctl: https://github.com/kubevirt/kubevirt/releases/download/${KUBEVIRT_VERSION}/virtctl-${KUBEVIRT_VERSION}-linux-amd64
  helm:    https://helm.sh/docs/intro/install/
EOF
    exit 1
  fi
  docker info >/dev/null 2>&1 || die "docker is installed but no Docker engine answers (docker info failed); start one, or run this elsewhere"
  local kind_version
  kind_version=$(kind version)
  [[ "$kind_version" == *"kind ${KIND_VERSION} "* ]] || die "kind ${KIND_VERSION} is pinned, found: ${kind_version} (go install sigs.k8s.io/kind@${KIND_VERSION})"
  if ! virtctl version --client 2>/dev/null | grep -q "\"${KUBEVIRT_VERSION}\""; then
    printf 'warning: virtctl is not %s (KubeVirt here); it may still work\n' "$KUBEVIRT_VERSION" >&2
  fi
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
    die "a kind cluster named ${CLUSTER_NAME} exists; delete it (kind delete cluster --name ${CLUSTER_NAME}) or set CLUSTER_NAME"
  fi
}

create_cluster() {
  log "kind ${KIND_VERSION}: cluster ${CLUSTER_NAME} (${KIND_NODE_IMAGE%@*}), one control plane and two workers"
  mkdir -p "${WORK_DIR}/shared"
  chmod 0777 "${WORK_DIR}/shared"
  cat >"${WORK_DIR}/kind.yaml" <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    image: ${KIND_NODE_IMAGE}
    extraMounts: [{hostPath: "${WORK_DIR}/shared", containerPath: "${SHARED_PATH}"}]
  - role: worker
    image: ${KIND_NODE_IMAGE}
    extraMounts: [{hostPath: "${WORK_DIR}/shared", containerPath: "${SHARED_PATH}"}]
  - role: worker
    image: ${KIND_NODE_IMAGE}
    extraMounts: [{hostPath: "${WORK_DIR}/shared", containerPath: "${SHARED_PATH}"}]
EOF
  CLUSTER_CREATED=1
  kind create cluster --name "$CLUSTER_NAME" --config "${WORK_DIR}/kind.yaml" --kubeconfig "$KUBECONFIG" --wait 5m
  # The two workers play the example's two sites (examples/gluster: site-cache, data-residency).
  kubectl label node "${CLUSTER_NAME}-worker" --overwrite topology.kubernetes.io/zone=zone-a topology.kubernetes.io/region=eu-north
  kubectl label node "${CLUSTER_NAME}-worker2" --overwrite topology.kubernetes.io/zone=zone-b topology.kubernetes.io/region=us-east

  log "storage: kind's local-path provisioner on the shared directory (ReadWriteMany)"
  kubectl -n local-path-storage patch configmap local-path-config --type merge -p "$(
    cat <<EOF
data:
  config.json: |-
    {"sharedFileSystemPath": "${SHARED_PATH}"}
EOF
  )"
  kubectl -n local-path-storage rollout restart deployment local-path-provisioner
  kubectl -n local-path-storage rollout status deployment local-path-provisioner --timeout=3m
}

install_kubevirt_and_cdi() {
  log "KubeVirt ${KUBEVIRT_VERSION} (useEmulation, DeclarativeHotplugVolumes)"
  kubectl apply -f "https://github.com/kubevirt/kubevirt/releases/download/${KUBEVIRT_VERSION}/kubevirt-operator.yaml"
  kubectl apply -f - <<EOF
apiVersion: kubevirt.io/v1
kind: KubeVirt
metadata:
  name: kubevirt
  namespace: kubevirt
spec:
  configuration:
    developerConfiguration:
      useEmulation: true
      featureGates: [DeclarativeHotplugVolumes]
EOF
  log "CDI ${CDI_VERSION}"
  kubectl apply -f "https://github.com/kubevirt/containerized-data-importer/releases/download/${CDI_VERSION}/cdi-operator.yaml"
  kubectl apply -f "https://github.com/kubevirt/containerized-data-importer/releases/download/${CDI_VERSION}/cdi-cr.yaml"
  kubectl -n kubevirt wait kubevirt kubevirt --for condition=Available --timeout=15m
  kubectl wait cdi cdi --for condition=Available --timeout=10m
  # CDI fills a DataVolume's unset storage fields from the storage class's profile; it does not
  # know local-path on a shared directory is ReadWriteMany.
  wait_until 300 "CDI's StorageProfile of the standard class" exists storageprofile standard
  kubectl patch storageprofile standard --type merge -p '{"spec":{"claimPropertySets":[{"accessModes":["ReadWriteMany"],"volumeMode":"Filesystem"}]}}'
}

leader_pod() { kubectl -n "$OPERATOR_NAMESPACE" get pods -l recontext.dev/leader=true -o jsonpath='{.items[*].metadata.name}' 2>/dev/null; }
has_leader() { [[ -n "$(leader_pod)" ]]; }
image_service_has_endpoint() {
  [[ -n "$(kubectl -n "$OPERATOR_NAMESPACE" get endpointslices -l kubernetes.io/service-name=recontext-images -o jsonpath='{.items[*].endpoints[*].addresses[*]}' 2>/dev/null)" ]]
}

install_operator() {
  if [[ "$E2E_MODE" == registry ]]; then
    log "operator image ${OPERATOR_IMAGE} (docker build -f Dockerfile), loaded into kind"
    docker build -t "$OPERATOR_IMAGE" -f "${REPO_ROOT}/Dockerfile" "$REPO_ROOT"
    kind load docker-image "$OPERATOR_IMAGE" --name "$CLUSTER_NAME"
  fi
  log "helm install charts/recontext"
  helm upgrade --install recontext "${REPO_ROOT}/charts/recontext" --namespace "$OPERATOR_NAMESPACE" --create-namespace \
    --set image.repository="${OPERATOR_IMAGE%%:*}" --set image.tag="${OPERATOR_IMAGE##*:}" --set image.pullPolicy=Never \
    --wait --timeout 5m
  wait_until 120 "a leader pod labelled recontext.dev/leader=true" has_leader
  wait_until 60 "an endpoint behind the image Service recontext-images" image_service_has_endpoint
  printf 'leader: %s\n' "$(leader_pod)"
}

vmctx() { kubectl -n "$NAMESPACE" get vmcontext "$VMCONTEXT" -o "jsonpath=$1" 2>/dev/null || true; }
vmi() { kubectl -n "$NAMESPACE" get vmi "$VM" -o "jsonpath=$1" 2>/dev/null || true; }
ready() { [[ "$(vmctx '{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
infrastructure_digests() { vmctx '{range .status.layers[?(@.class=="infrastructure")]}{.name}={.digest}{" "}{end}'; }
layers() { vmctx '{range .status.layers[*]}{"  "}{.name} ({.class}) {.digest} on {.device}{"\n"}{end}'; }

RESTARTED=0
# Ready, or (once) restart the VM if KubeVirt says the first attach of the CD-ROMs needs it.
ready_or_restart_once() {
  ready && return 0
  if ((RESTARTED == 0)) && [[ "$(kubectl -n "$NAMESPACE" get vm "$VM" -o jsonpath='{.status.conditions[?(@.type=="RestartRequired")].status}')" == True ]]; then
    printf 'KubeVirt reports RestartRequired after the first attach (new CD-ROM drives); restarting the VM once\n'
    virtctl restart "$VM" -n "$NAMESPACE"
    RESTARTED=1
  fi
  return 1
}

start_scenario() {
  log "scenario: VM ${VM} (cirros) and examples/gluster in namespace ${NAMESPACE}"
  kubectl create namespace "$NAMESPACE"
  kubectl -n "$NAMESPACE" apply -f - <<EOF
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: ${VM}
  labels: {app: gluster-client}
spec:
  runStrategy: Always
  template:
    metadata:
      labels: {app: gluster-client, kubevirt.io/vm: ${VM}}
    spec:
      evictionStrategy: LiveMigrate
      domain:
        devices:
          disks:
            - name: containerdisk
              disk: {bus: virtio}
          interfaces:
            - name: default
              masquerade: {}
        resources:
          requests: {memory: 128Mi}
      networks:
        - name: default
          pod: {}
      volumes:
        - name: containerdisk
          containerDisk: {image: ${VM_IMAGE}}
EOF
  wait_until 300 "the VirtualMachineInstance ${VM}" exists -n "$NAMESPACE" vmi "$VM"
  kubectl -n "$NAMESPACE" wait vmi "$VM" --for condition=Ready --timeout=10m
  kubectl -n "$NAMESPACE" apply -f "${REPO_ROOT}/examples/gluster"
  wait_until 900 "VMContext ${VMCONTEXT} Ready" ready_or_restart_once
  printf 'VMContext Ready on node %s:\n%s\n' "$(vmctx '{.status.node}')" "$(layers)"
}

BEFORE_MIGRATION=""
BEFORE_DIGESTS=""
BEFORE_VMI_UID=""
recontextualized() {
  local id
  id=$(vmctx '{.status.lastMigrationId}')
  [[ -n "$id" && "$id" != "$BEFORE_MIGRATION" ]] || return 1
  [[ "$(infrastructure_digests)" != "$BEFORE_DIGESTS" ]] || return 1
  ready
}
migration_completed() { [[ "$(vmi '{.status.migrationState.completed}')" == true ]]; }

migrate() {
  BEFORE_MIGRATION=$(vmctx '{.status.lastMigrationId}')
  BEFORE_DIGESTS=$(infrastructure_digests)
  BEFORE_VMI_UID=$(vmi '{.metadata.uid}')
  local before_node
  before_node=$(vmi '{.status.nodeName}')
  [[ -n "$BEFORE_DIGESTS" ]] || die "the VMContext reports no infrastructure layer (expected site-cache)"
  if [[ "$(vmi '{.status.conditions[?(@.type=="LiveMigratable")].status}')" != True ]]; then
    die "KubeVirt says the VM cannot live-migrate: $(vmi '{.status.conditions[?(@.type=="LiveMigratable")].reason}'): $(vmi '{.status.conditions[?(@.type=="LiveMigratable")].message}') (a CD-ROM on a ReadWriteOnce PVC blocks live migration: the DataVolumes must be ReadWriteMany)"
  fi
  log "virtctl migrate ${VM} (now on ${before_node}; last migration handled: ${BEFORE_MIGRATION:-none})"
  virtctl migrate "$VM" -n "$NAMESPACE"
  wait_until 600 "the live migration of ${VM}" migration_completed
  [[ "$(vmi '{.status.migrationState.failed}')" != true ]] || die "the migration failed: $(vmi '{.status.migrationState}')"
  local after_node
  after_node=$(vmi '{.status.nodeName}')
  [[ "$after_node" != "$before_node" ]] || die "the VM is still on ${before_node} after the migration"
  wait_until 600 "recontext to handle the migration (new lastMigrationId, new infrastructure digests, Ready)" recontextualized
  [[ "$(vmi '{.metadata.uid}')" == "$BEFORE_VMI_UID" ]] || die "the VMI was recreated: the VM restarted instead of getting its context live"
  [[ "$(kubectl -n "$NAMESPACE" get vm "$VM" -o jsonpath='{.status.conditions[?(@.type=="RestartRequired")].status}')" != True ]] ||
    die "KubeVirt reports RestartRequired after the swap: the new images did not reach the running VM"

  log "result"
  printf 'VM %s migrated %s -> %s (migration %s)\n' "$VM" "$before_node" "$after_node" "$(vmi '{.status.migrationState.migrationUid}')"
  printf 'VMContext %s: node %s, lastMigrationId %s (was %s)\n' "$VMCONTEXT" "$(vmctx '{.status.node}')" "$(vmctx '{.status.lastMigrationId}')" "${BEFORE_MIGRATION:-none}"
  printf 'infrastructure layers before: %s\n' "$BEFORE_DIGESTS"
  printf 'infrastructure layers after:  %s\n' "$(infrastructure_digests)"
  printf 'layers now:\n%s\n' "$(layers)"
  printf 'last recontextualization: %s\n' "$(vmctx '{.status.lastRecontext}')"
  printf 'CD-ROM volumes of the VMI:\n%s\n' "$(vmi '{range .status.volumeStatus[*]}{"  "}{.name} -> {.persistentVolumeClaimInfo.claimName} ({.phase}){"\n"}{end}')"
  log "PASS: the VM migrated to another zone and recontext swapped its infrastructure layer while it ran"
}

# Local mode: the cluster, kubectl, kind, helm and the operator image all come from this
# repository's builds (test/cluster/README.md); nothing is pulled.
use_local_cluster() {
  log "local mode: the cluster of npm run cluster:up (built here, nothing pulled)"
  command -v docker >/dev/null 2>&1 || die "local mode needs the docker CLI (apt-get install docker.io)"
  local kubeconfig bins
  kubeconfig=$(cd "$REPO_ROOT" && npm run -s cluster:up | tail -1)
  cp "$kubeconfig" "$KUBECONFIG"
  bins=$(cd "$REPO_ROOT" && npx tsx test/cluster/bed/cli.ts tools | tail -1)
  export PATH="${bins}:${PATH}"
  export DOCKER_HOST
  DOCKER_HOST=$(cd "$REPO_ROOT" && npx tsx test/cluster/bed/cli.ts docker-host | tail -1)
  CLUSTER_NAME=recontext
  # The cluster belongs to npm run cluster:up (npm run cluster:down removes it), not to this script.
  CLUSTER_CREATED=0
  KEEP_CLUSTER=1
  [[ -n "${KUBEVIRT_IMAGES:-}" ]] || die "local mode: KubeVirt ${KUBEVIRT_VERSION} and CDI ${CDI_VERSION} images are not built on this machine yet (the real KubeVirt + CDI issue); the cluster and the operator image are, see test/cluster"
}

install_operator_local() {
  log "operator image (docker build with the Node.js bases built here), loaded into kind"
  OPERATOR_IMAGE=$(cd "$REPO_ROOT" && npx tsx test/cluster/bed/cli.ts operator-image | tail -1)
  kind load docker-image "$OPERATOR_IMAGE" --name "$CLUSTER_NAME"
}

case "$E2E_MODE" in
  registry)
    check_prerequisites
    create_cluster
    install_kubevirt_and_cdi
    install_operator
    ;;
  local)
    use_local_cluster
    install_kubevirt_and_cdi
    install_operator_local
    install_operator
    ;;
  *) die "E2E_MODE must be registry or local, got ${E2E_MODE}" ;;
esac
start_scenario
migrate
