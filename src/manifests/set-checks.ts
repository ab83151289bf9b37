// Checks of a set of manifests taken together, as `kubectl apply -f DIR` would create them: the
// same name twice, references to objects the set does not hold (layers, ConfigMaps, Secrets and
// their keys), and, for standalone mode, whether each libvirt VM's layers render on the hosts of
// the hosts file. Pure: documents in, problems out; `recontext validate` prints them.
import { isRecord, didYouMean } from '../crds/validate.js';
import { selectLayers } from '../reconcile/layers.js';
import { LayerError, layerUsesNode, renderLayer } from '../reconcile/render.js';
import type { ManifestDocument } from './load.js';
import { buildWorkspace, type Workspace } from './workspace.js';

export interface SetProblem {
  readonly document: ManifestDocument;
  readonly path: readonly (string | number)[];
  readonly message: string;
  /**
   * Not wrong in itself: a reference to an object that may live in the cluster rather than in the
   * set (a ConfigMap or Secret, often created by other tooling), or a VM that will need a restart.
   * A warning; an error only with --strict.
   */
  readonly warning?: boolean;
}

export interface HostsInSet {
  readonly document: ManifestDocument;
  readonly hosts: readonly { readonly name: string; readonly labels: Readonly<Record<string, string>> }[];
}

export interface SetCheckInput {
  readonly documents: readonly ManifestDocument[];
  /** Documents of ours that passed the per-object checks: only these are rendered. */
  readonly wellFormed: ReadonlySet<ManifestDocument>;
  /** Standalone mode's hosts file, when the set has one (the file is not a Kubernetes object). */
  readonly hosts?: HostsInSet;
  readonly defaultNamespace: string;
  readonly hostsFileName: string;
}

const GROUP_KINDS = new Set(['recontext.dev/v1alpha1|ContextLayer', 'recontext.dev/v1alpha1|VMContext', 'recontext.dev/v1alpha1|MigrationPolicy']);

interface Identified {
  readonly document: ManifestDocument;
  readonly object: Record<string, unknown> & { metadata: Record<string, unknown> };
  readonly kind: string;
  readonly name: string;
  readonly namespace: string;
}

export function setProblems(input: SetCheckInput): SetProblem[] {
  const objects: Identified[] = input.documents.flatMap((document) => {
    const object = document.object;
    if (!isRecord(object) || !isRecord(object.metadata) || typeof object.kind !== 'string' || typeof object.metadata.name !== 'string') return [];
    const namespace = typeof object.metadata.namespace === 'string' ? object.metadata.namespace : input.defaultNamespace;
    return [{ document, object: object as Identified['object'], kind: object.kind, name: object.metadata.name, namespace }];
  });
  // Only well-formed objects of ours are selected and rendered.
  const workspace = buildWorkspace(
    input.documents.filter((d) => input.wellFormed.has(d) || !GROUP_KINDS.has(kindKey(d.object))),
    input.defaultNamespace,
  );
  return [...duplicates(objects), ...dataProblems(objects), ...layerReferences(objects), ...sourceReferences(objects), ...hostProblems(input, workspace), ...driveProblems(workspace, objects)];
}

/** The same kind, namespace and name twice: kubectl apply keeps the last, render took the second. */
function duplicates(objects: readonly Identified[]): SetProblem[] {
  const first = new Map<string, Identified>();
  const problems: SetProblem[] = [];
  for (const object of objects) {
    const key = `${String(object.object.apiVersion)}|${object.kind}|${object.namespace}|${object.name}`;
    const earlier = first.get(key);
    if (earlier) {
      problems.push({
        document: object.document,
        path: ['metadata', 'name'],
        message: `${object.kind} "${object.name}" in namespace ${object.namespace} is defined twice (first at ${earlier.document.file}:${earlier.document.lineOf(['metadata', 'name'])}); one would replace the other`,
      });
    } else first.set(key, object);
  }
  return problems;
}

/** ConfigMap data and Secret stringData values must be strings (the API server refuses others). */
function dataProblems(objects: readonly Identified[]): SetProblem[] {
  const problems: SetProblem[] = [];
  for (const object of objects) {
    if (object.object.apiVersion !== 'v1' || (object.kind !== 'ConfigMap' && object.kind !== 'Secret')) continue;
    for (const field of ['data', 'stringData', 'binaryData']) {
      const data = object.object[field];
      if (data === undefined || data === null) continue;
      if (!isRecord(data)) {
        problems.push({ document: object.document, path: [field], message: 'must be a map of keys to strings' });
        continue;
      }
      for (const [key, value] of Object.entries(data)) {
        if (typeof value === 'string') continue;
        // A number is quoted to become the string it looks like; booleans get validate's YAML 1.1 hint.
        const quote = typeof value === 'number' ? `; quote it: "${String(value)}"` : '';
        problems.push({ document: object.document, path: [field, key], message: `must be a string (got ${typeof value} ${JSON.stringify(value)})${quote}` });
      }
    }
  }
  return problems;
}

const byNamespace = (objects: readonly Identified[], apiVersion: string, kind: string) => {
  const map = new Map<string, Map<string, Identified>>();
  for (const object of objects) {
    if (object.object.apiVersion !== apiVersion || object.kind !== kind) continue;
    if (!map.has(object.namespace)) map.set(object.namespace, new Map());
    map.get(object.namespace)!.set(object.name, object);
  }
  return (namespace: string) => map.get(namespace) ?? new Map<string, Identified>();
};

/** A VMContext's spec.layers must name ContextLayers of its namespace that are in the set. */
function layerReferences(objects: readonly Identified[]): SetProblem[] {
  const layers = byNamespace(objects, 'recontext.dev/v1alpha1', 'ContextLayer');
  const problems: SetProblem[] = [];
  for (const object of objects) {
    if (!GROUP_KINDS.has(`${String(object.object.apiVersion)}|${object.kind}`) || object.kind !== 'VMContext') continue;
    const spec = object.object.spec;
    const list = isRecord(spec) && Array.isArray(spec.layers) ? spec.layers : [];
    const known = layers(object.namespace);
    list.forEach((ref: unknown, i) => {
      if (!isRecord(ref) || typeof ref.name !== 'string' || known.has(ref.name)) return;
      const guess = didYouMean(ref.name, [...known.keys()]);
      const elsewhere = [...objects].find((o) => o.kind === 'ContextLayer' && o.name === ref.name);
      problems.push({
        document: object.document,
        path: ['spec', 'layers', i, 'name'],
        message:
          `no ContextLayer "${ref.name}" in namespace ${object.namespace}` +
          (guess ? ` (did you mean "${guess}"?)` : elsewhere ? ` (there is one in namespace ${elsewhere.namespace}; a VMContext only gets layers of its own namespace)` : known.size > 0 ? ` (the set has ${[...known.keys()].sort().join(', ')})` : ' (the set has none in that namespace)'),
      });
    });
  }
  return problems;
}

/** ConfigMaps and Secrets named by layers: the key must exist when the object is in the set; absent objects are a warning. */
function sourceReferences(objects: readonly Identified[]): SetProblem[] {
  const configMaps = byNamespace(objects, 'v1', 'ConfigMap');
  const secrets = byNamespace(objects, 'v1', 'Secret');
  const keysOf = (object: Identified): string[] =>
    ['data', 'binaryData', 'stringData'].flatMap((field) => (isRecord(object.object[field]) ? Object.keys(object.object[field] as object) : []));
  const problems: SetProblem[] = [];
  for (const layer of objects) {
    if (layer.object.apiVersion !== 'recontext.dev/v1alpha1' || layer.kind !== 'ContextLayer' || !isRecord(layer.object.spec)) continue;
    const spec = layer.object.spec;
    /** `at`: the field naming the object; a key reference sits beside it. */
    const check = (at: (string | number)[], kind: 'ConfigMap' | 'Secret', name: unknown, key: unknown, optional: unknown) => {
      if (typeof name !== 'string' || optional === true) return;
      const target = (kind === 'ConfigMap' ? configMaps : secrets)(layer.namespace).get(name);
      if (!target) {
        problems.push({ document: layer.document, path: at, message: `${kind} "${name}" is not in the set (namespace ${layer.namespace}); it must exist in the cluster`, warning: true });
        return;
      }
      if (typeof key !== 'string') return;
      const keys = keysOf(target);
      if (keys.includes(key)) return;
      const guess = didYouMean(key, keys);
      problems.push({
        document: layer.document,
        path: [...at.slice(0, -1), 'key'],
        message: `${kind} "${name}" (${target.document.file}:${target.document.lineOf(['metadata', 'name'])}) has no key "${key}"${guess ? ` (did you mean "${guess}"?)` : ` (it has ${keys.sort().join(', ') || 'no keys'})`}`,
      });
    };
    (Array.isArray(spec.files) ? spec.files : []).forEach((file: unknown, i) => {
      if (!isRecord(file) || !isRecord(file.contentFrom)) return;
      for (const [field, kind] of [['configMapKeyRef', 'ConfigMap'], ['secretKeyRef', 'Secret']] as const) {
        const ref = file.contentFrom[field];
        if (isRecord(ref)) check(['spec', 'files', i, 'contentFrom', field, 'name'], kind, ref.name, ref.key, ref.optional);
      }
    });
    (Array.isArray(spec.sources) ? spec.sources : []).forEach((source: unknown, i) => {
      if (!isRecord(source)) return;
      if (typeof source.configMap === 'string') check(['spec', 'sources', i, 'configMap'], 'ConfigMap', source.configMap, undefined, source.optional);
      if (typeof source.secret === 'string') check(['spec', 'sources', i, 'secret'], 'Secret', source.secret, undefined, source.optional);
    });
  }
  return problems;
}

/**
 * Standalone mode: the hosts file gives templates their node facts. Each libvirt VM's layers are
 * rendered for every host, as the operator will when the VM runs there (or migrates there).
 * Without a hosts file, layers that read the node cannot render on hosts given by --libvirt alone.
 */
function hostProblems(input: SetCheckInput, workspace: Workspace): SetProblem[] {
  const problems: SetProblem[] = [];
  const documentOf = (kind: string, namespace: string, name: string) =>
    input.documents.find((d) => input.wellFormed.has(d) && kindKey(d.object) === `recontext.dev/v1alpha1|${kind}` && isRecord(d.object) && isRecord(d.object.metadata) && d.object.metadata.name === name && (d.object.metadata.namespace ?? input.defaultNamespace) === namespace);
  for (const vmContext of workspace.vmContexts) {
    const domain = vmContext.spec.target.libvirt?.domain;
    if (domain === undefined) continue;
    const vmDocument = documentOf('VMContext', vmContext.metadata.namespace!, vmContext.metadata.name)!;
    const layers = selectLayers(vmContext, workspace.layers).layers;
    if (!input.hosts) {
      const needNode = layers.filter(layerUsesNode).map((l) => l.metadata.name);
      if (needNode.length > 0) {
        problems.push({
          document: vmDocument,
          path: ['spec', 'target', 'libvirt'],
          message: `layers ${needNode.join(', ')} read the node (templates or variants), but the set has no ${input.hostsFileName}: hosts given only by --libvirt have no labels`,
          warning: true,
        });
      }
      continue;
    }
    for (const layer of layers) {
      for (const host of input.hosts.hosts) {
        try {
          renderLayer(layer, {
            vm: { name: domain, namespace: vmContext.metadata.namespace!, labels: vmContext.metadata.labels ?? {} },
            node: { name: host.name, labels: host.labels },
            sources: workspace.sources(vmContext.metadata.namespace!),
          });
        } catch (error: unknown) {
          if (!(error instanceof LayerError)) throw error;
          // A ConfigMap or Secret missing from the set is reported (or not, when it may be in the cluster) above.
          if (error.reason === 'ContentNotFound') continue;
          problems.push({
            document: documentOf('ContextLayer', layer.metadata.namespace!, layer.metadata.name)!,
            path: ['spec'],
            message: `does not render for VM ${domain} on host ${host.name} (${input.hosts.document.file}): ${error.message}`,
          });
        }
      }
    }
  }
  return problems;
}

/**
 * A KubeVirt VirtualMachine in the set that a VMContext targets: KubeVirt hot-plugs volumes only
 * into drives the VM started with, so each layer wants an empty CD-ROM disk ctx-<layer>; a disk of
 * that name that is not a CD-ROM, or a volume of that name, is one recontext will not touch
 * (VolumeNameConflict).
 */
function driveProblems(workspace: Workspace, objects: readonly Identified[]): SetProblem[] {
  const problems: SetProblem[] = [];
  for (const vmContext of workspace.vmContexts) {
    const name = vmContext.spec.target.kubevirt?.name;
    const vm = objects.find((o) => o.object.apiVersion === 'kubevirt.io/v1' && o.kind === 'VirtualMachine' && o.name === name && o.namespace === vmContext.metadata.namespace);
    if (!vm) continue;
    const template = isRecord(vm.object.spec) && isRecord(vm.object.spec.template) && isRecord(vm.object.spec.template.spec) ? vm.object.spec.template.spec : {};
    const devices = isRecord(template.domain) && isRecord(template.domain.devices) ? template.domain.devices : {};
    const disks = (Array.isArray(devices.disks) ? devices.disks : []).filter(isRecord);
    const volumes = (Array.isArray(template.volumes) ? template.volumes : []).filter(isRecord);
    const diskPath = (i: number) => ['spec', 'template', 'spec', 'domain', 'devices', 'disks', i];
    for (const layer of selectLayers(vmContext, workspace.layers).layers) {
      const drive = `ctx-${layer.metadata.name}`;
      const i = disks.findIndex((d) => d.name === drive);
      const v = volumes.findIndex((d) => d.name === drive);
      if (v >= 0) problems.push({ document: vm.document, path: ['spec', 'template', 'spec', 'volumes', v], message: `volume ${drive} is recontext's for layer ${layer.metadata.name}: remove it (recontext adds and swaps it)` });
      if (i >= 0 && !isRecord(disks[i]!.cdrom)) problems.push({ document: vm.document, path: diskPath(i), message: `disk ${drive} must be an empty CD-ROM for layer ${layer.metadata.name} (cdrom: {bus: sata})` });
      if (i < 0) {
        problems.push({
          document: vm.document,
          path: ['spec', 'template', 'spec', 'domain', 'devices', 'disks'],
          message: `no empty CD-ROM ${drive} for layer ${layer.metadata.name} of VMContext ${vmContext.metadata.name}: add {name: ${drive}, cdrom: {bus: sata}}, or the running VM gets that layer only after a restart`,
          warning: true,
        });
      }
    }
  }
  return problems;
}

const kindKey = (object: unknown): string => (isRecord(object) ? `${String(object.apiVersion)}|${String(object.kind)}` : '');
