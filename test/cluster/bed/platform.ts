// KubeVirt and CDI on the local cluster, from container images built on this machine out of their
// public source repositories (github.com/kubevirt/kubevirt, kubevirt/containerized-data-importer).
//
// Their build is not part of this repository: here their sources come only from a snapshot store
// whose terms forbid committing code of theirs or any recipe that builds it. So the harness takes
// the images as it finds them in the cluster's Docker engine, by their OCI labels
// (org.opencontainers.image.source names the repository, …revision the commit), loads them into
// the nodes, and installs both through their own operators with manifests of ours
// (bed/manifests/{kubevirt,cdi}-operator.yaml): the operators create everything else.
//
// What each image must hold is what the projects' own images hold (their cmd/*/BUILD.bazel and
// Containerfiles); test/e2e/kubevirt/README.md lists the names.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatElapsed, runCommand } from '../../controlplane/build.js';
import { kubectl, kubectlWait, type LocalCluster } from './cluster.js';
import { docker } from './docker.js';
import { CLUSTER_DIR } from './versions.js';

const MANIFESTS = join(CLUSTER_DIR, 'bed', 'manifests');
const SOURCE_LABEL = 'org.opencontainers.image.source';
const REVISION_LABEL = 'org.opencontainers.image.revision';

export interface PlatformProject {
  /** What the project is called in messages. */
  readonly title: string;
  /** The label org.opencontainers.image.source of its images. */
  readonly source: string;
  /** Environment variable that picks one revision when the engine holds several. */
  readonly revisionVariable: string;
  /** Images the install needs, by their name (the repository's last path segment). */
  readonly images: readonly string[];
}

export const KUBEVIRT: PlatformProject = {
  title: 'KubeVirt',
  source: 'https://github.com/kubevirt/kubevirt',
  revisionVariable: 'KUBEVIRT_REVISION',
  images: ['virt-operator', 'virt-api', 'virt-controller', 'virt-handler', 'virt-launcher', 'virt-exportproxy', 'virt-exportserver', 'virt-synchronization-controller'],
};

export const CDI: PlatformProject = {
  title: 'CDI',
  source: 'https://github.com/kubevirt/containerized-data-importer',
  revisionVariable: 'CDI_REVISION',
  images: ['cdi-operator', 'cdi-controller', 'cdi-apiserver', 'cdi-importer', 'cdi-cloner', 'cdi-uploadproxy', 'cdi-uploadserver'],
};

/** One project's images, all of one revision. */
export interface PlatformImages {
  readonly project: PlatformProject;
  readonly revision: string;
  /** Image name → reference (repository:tag) in the engine. */
  readonly images: Readonly<Record<string, string>>;
}

/** The images a project needs are not in the engine: says which, and how to provide them. */
export class PlatformImagesMissing extends Error {
  override readonly name = 'PlatformImagesMissing';
}

/** A line of `docker images` for the project: reference and revision. */
export interface LabelledImage {
  readonly reference: string;
  readonly revision: string;
}

/**
 * Pure: the project's images of one revision — the one `wanted` names, or the only revision
 * that has every image. Throws PlatformImagesMissing saying what is missing.
 */
export function pickImages(project: PlatformProject, found: readonly LabelledImage[], wanted: string | undefined): PlatformImages {
  const byRevision = new Map<string, Map<string, string>>();
  for (const image of found) {
    const name = image.reference.replace(/:[^:/]*$/, '').split('/').pop() ?? '';
    const images = byRevision.get(image.revision) ?? new Map<string, string>();
    if (!images.has(name)) images.set(name, image.reference);
    byRevision.set(image.revision, images);
  }
  const complete = [...byRevision].filter(([, images]) => project.images.every((name) => images.has(name)));
  const how =
    `build them from ${project.source} (any commit whose images work together), label each with ${SOURCE_LABEL}=${project.source} and ${REVISION_LABEL}=<commit>, ` +
    `and load them into the cluster's engine (DOCKER_HOST=$(npx tsx test/cluster/bed/cli.ts docker-host)); test/e2e/kubevirt/README.md`;
  if (wanted !== undefined) {
    const images = [...byRevision].find(([revision]) => revision === wanted || revision.startsWith(wanted))?.[1];
    const missing = project.images.filter((name) => !images?.has(name));
    if (!images || missing.length > 0) throw new PlatformImagesMissing(`${project.title} images of revision ${wanted} (${project.revisionVariable}): missing ${missing.join(', ')}; ${how}`);
    const revision = [...byRevision.keys()].find((r) => r === wanted || r.startsWith(wanted)) ?? wanted;
    return { project, revision, images: Object.fromEntries(project.images.map((name) => [name, images.get(name)!])) };
  }
  if (complete.length === 1) {
    const [revision, images] = complete[0]!;
    return { project, revision, images: Object.fromEntries(project.images.map((name) => [name, images.get(name)!])) };
  }
  if (complete.length > 1) throw new PlatformImagesMissing(`${project.title} images of several revisions are complete (${complete.map(([r]) => r.slice(0, 12)).join(', ')}): set ${project.revisionVariable} to one`);
  const partial = [...byRevision].map(([revision, images]) => `${revision.slice(0, 12)} lacks ${project.images.filter((name) => !images.has(name)).join(', ')}`);
  throw new PlatformImagesMissing(`no complete set of ${project.title} images (${project.images.join(', ')}) in the cluster's Docker engine${partial.length ? ` (${partial.join('; ')})` : ''}: ${how}`);
}

/** The project's images in the cluster's engine. */
export async function findImages(cluster: LocalCluster, project: PlatformProject): Promise<PlatformImages> {
  const references = (await docker(cluster.engine, ['images', '--filter', `label=${SOURCE_LABEL}=${project.source}`, '--format', '{{.Repository}}:{{.Tag}}']))
    .split('\n')
    .filter((line) => line.trim() && !line.includes('<none>'));
  // `docker images` cannot print labels (Docker 20.10): inspect says each image's revision.
  const revisions = references.length === 0 ? [] : (await docker(cluster.engine, ['image', 'inspect', '--format', `{{index .Config.Labels "${REVISION_LABEL}"}}`, ...references])).split('\n');
  const found = references.map((reference, i) => ({ reference, revision: revisions[i]?.trim() ?? '' }));
  return pickImages(project, found, process.env[project.revisionVariable] || undefined);
}

/** Imports each image into every node whose containerd does not hold that image id yet. */
export async function loadIntoNodes(cluster: LocalCluster, images: readonly string[], log: (line: string) => void): Promise<void> {
  const nodes = (await kubectl(cluster, ['get', 'nodes', '-o', 'jsonpath={.items[*].metadata.name}'])).trim().split(' ');
  for (const image of images) {
    const id = (await docker(cluster.engine, ['image', 'inspect', '--format', '{{.Id}}', image])).trim();
    const missing: string[] = [];
    for (const node of nodes) {
      const held = await docker(cluster.engine, ['exec', node, 'crictl', 'inspecti', '-o', 'go-template', '--template', '{{.status.id}}', image]).then((s) => s.trim(), () => '');
      if (held !== id) missing.push(node);
    }
    if (missing.length === 0) continue;
    const started = Date.now();
    // As `kind load docker-image`: the archive streamed into each node's containerd (k8s.io
    // namespace), and also registered as repository@sha256:<digest> (--digests): KubeVirt pins a
    // container disk or kernelBoot image to the digest of the source pod's image, and a migration
    // target asks for exactly that reference.
    for (const node of missing) {
      await runCommand('sh', ['-c', 'docker save "$1" | docker exec -i "$2" ctr -n k8s.io images import --base-name "$3" --digests - >/dev/null', 'load', image, node, image.replace(/:[^:/]*$/, '')], {
        env: cluster.engine.env,
      });
    }
    log(`platform: loaded ${image} into ${missing.join(', ')} (${formatElapsed(Date.now() - started)})`);
  }
}

/** The manifest with @IMAGE:<name>@ (each image's reference) and @VERSION@ (the images' tag) filled in. */
export function manifest(file: string, platform: PlatformImages): string {
  const text = readFileSync(join(MANIFESTS, file), 'utf8').replaceAll('@VERSION@', tagOf(platform));
  return text.replace(/@IMAGE:([a-z0-9-]+)@/g, (_, name: string) => {
    const reference = platform.images[name];
    if (!reference) throw new Error(`${file}: no image ${name} among ${Object.keys(platform.images).join(', ')}`);
    return reference;
  });
}

/** The tag of a project's images (all share one), where its operator wants a version label. */
function tagOf(platform: PlatformImages): string {
  return Object.values(platform.images)[0]!.split(':').pop()!;
}

/** Waits for a condition of an object, retrying while the object does not exist yet. */
async function waitFor(cluster: LocalCluster, what: string, args: readonly string[], timeoutMs: number): Promise<void> {
  await kubectlWait(cluster, args, Date.now() + timeoutMs).catch((error: unknown) => {
    throw new Error(`platform: ${what} not within ${timeoutMs / 1000} s: ${String(error)}`);
  });
}

/**
 * Deletes the fixture CRDs (label recontext.dev/fixture, test/fixtures/kubevirt) that tests of the
 * plain cluster left: the operators create their own CRDs and refuse to start over existing ones.
 * The KubeVirt resource's CRD stays (it is the one the install uses).
 */
async function removeFixtureCrds(cluster: LocalCluster, log: (line: string) => void): Promise<void> {
  const names = (await kubectl(cluster, ['get', 'crd', '-l', 'recontext.dev/fixture=true', '-o', 'name'])).split('\n').filter((name) => name && name !== 'customresourcedefinition.apiextensions.k8s.io/kubevirts.kubevirt.io');
  if (names.length === 0) return;
  await kubectl(cluster, ['delete', '--wait=true', ...names]);
  log(`platform: removed the test fixtures' CRDs ${names.map((name) => name.split('/')[1]).join(', ')} (the operators install the real ones)`);
}

/**
 * CDI through its operator; the storage profiles of the cluster's classes say what local-path
 * volumes are (CDI does not know the provisioner): `standard` ReadWriteOnce, `shared` ReadWriteMany.
 */
export async function installCdi(cluster: LocalCluster, cdi: PlatformImages, log: (line: string) => void): Promise<void> {
  const started = Date.now();
  await kubectl(cluster, ['apply', '--server-side', '--force-conflicts', '-f', '-'], manifest('cdi-operator.yaml', cdi));
  await waitFor(cluster, 'the CDI CRD', ['--for=condition=Established', 'crd/cdis.cdi.kubevirt.io'], 60_000);
  await kubectl(cluster, ['apply', '--server-side', '-f', '-'], JSON.stringify({ apiVersion: 'cdi.kubevirt.io/v1beta1', kind: 'CDI', metadata: { name: 'cdi' }, spec: { imagePullPolicy: 'IfNotPresent' } }));
  await waitFor(cluster, 'CDI Available', ['--for=condition=Available', 'cdi/cdi'], 600_000);
  for (const [storageClass, accessMode] of [['standard', 'ReadWriteOnce'], ['shared', 'ReadWriteMany']] as const) {
    // CDI creates a profile per class; it may not have written it yet.
    await waitFor(cluster, `the StorageProfile ${storageClass}`, ['--for=jsonpath={.metadata.name}', `storageprofile/${storageClass}`], 60_000);
    await kubectl(cluster, ['patch', 'storageprofile', storageClass, '--type=merge', '-p', JSON.stringify({ spec: { claimPropertySets: [{ accessModes: [accessMode], volumeMode: 'Filesystem' }] } })]);
  }
  log(`platform: CDI ${cdi.revision.slice(0, 12)} Available (${formatElapsed(Date.now() - started)})`);
}

/**
 * KubeVirt through its operator: QEMU without KVM (useEmulation: no usable /dev/kvm here),
 * declarative volume hotplug on. Two Beta gates are turned off because this cluster cannot serve
 * them: ImageVolume (containerd 1.6 in the nodes has no image volumes; container disks are copied
 * the classic way) and Template (its components come from another repository). See
 * kubeVirtResource for the node-labeller and network settings.
 */
export async function installKubeVirt(cluster: LocalCluster, kubevirt: PlatformImages, log: (line: string) => void): Promise<void> {
  const started = Date.now();
  const crd = join(CLUSTER_DIR, '..', 'fixtures', 'kubevirt', 'kubevirt-crd.yaml');
  await kubectl(cluster, ['apply', '--server-side', '--force-conflicts', '-f', crd]);
  await waitFor(cluster, 'the KubeVirt CRD', ['--for=condition=Established', 'crd/kubevirts.kubevirt.io'], 60_000);
  await kubectl(cluster, ['apply', '--server-side', '--force-conflicts', '-f', '-'], manifest('kubevirt-operator.yaml', kubevirt));
  await kubectl(cluster, ['apply', '--server-side', '--force-conflicts', '-f', '-'], JSON.stringify(kubeVirtResource()));
  await waitFor(cluster, 'KubeVirt Available', ['-n', 'kubevirt', '--for=condition=Available', 'kubevirt/kubevirt'], 900_000);
  log(`platform: KubeVirt ${kubevirt.revision.slice(0, 12)} Available (${formatElapsed(Date.now() - started)})`);
}

/**
 * The KubeVirt resource of the local cluster. Two settings fit these nodes:
 * - the nodes have a /dev/kvm that cannot run guests, so virt-handler's node labeller would probe
 *   KVM and label every node with KVM's host CPU model, which no node then satisfies as a
 *   migration target (NoSuitableNodesForHostModelMigration): it probes QEMU's emulation instead;
 * - their kernel has no `dummy` link type, which the default bridge binding needs ("LinkAdd:
 *   operation not supported"): pod networks default to masquerade (also what live migration needs).
 */
export function kubeVirtResource(): object {
  const labellerOnQemu = { spec: { template: { spec: { initContainers: [{ name: 'virt-launcher', env: [{ name: 'PREFERRED_VIRTTYPE', value: 'qemu' }] }] } } } };
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'KubeVirt',
    metadata: { name: 'kubevirt', namespace: 'kubevirt' },
    spec: {
      imagePullPolicy: 'IfNotPresent',
      infra: { replicas: 1 },
      customizeComponents: { patches: [{ resourceType: 'DaemonSet', resourceName: 'virt-handler', type: 'strategic', patch: JSON.stringify(labellerOnQemu) }] },
      configuration: {
        imagePullPolicy: 'IfNotPresent',
        network: { defaultNetworkInterface: 'masquerade' },
        developerConfiguration: { useEmulation: true, featureGates: ['DeclarativeHotplugVolumes'], disabledFeatureGates: ['ImageVolume', 'Template'] },
      },
    },
  };
}

export interface Platform {
  readonly kubevirt: PlatformImages;
  readonly cdi: PlatformImages;
}

/**
 * KubeVirt and CDI installed and Available on the cluster, from the images in its engine
 * (idempotent: a second call finds both Available at once). Throws PlatformImagesMissing first,
 * before touching the cluster, when images are missing.
 */
export async function ensurePlatform(cluster: LocalCluster, log: (line: string) => void): Promise<Platform> {
  const [kubevirt, cdi] = [await findImages(cluster, KUBEVIRT), await findImages(cluster, CDI)];
  log(`platform: KubeVirt ${kubevirt.revision.slice(0, 12)}, CDI ${cdi.revision.slice(0, 12)} (images in the cluster's engine)`);
  await removeFixtureCrds(cluster, log);
  await loadIntoNodes(cluster, [...Object.values(cdi.images), ...Object.values(kubevirt.images)], log);
  await installCdi(cluster, cdi, log);
  await installKubeVirt(cluster, kubevirt, log);
  return { kubevirt, cdi };
}
