// A set of manifests understood as a namespace-scoped model: our resources plus the ConfigMaps
// and Secrets they reference. This is how the CLI (and later standalone mode) sees a GitOps
// directory without a cluster.
import type { ContextLayer, MigrationPolicy, VMContext } from '../crds/index.js';
import { isRecord } from '../crds/validate.js';
import type { SourceLookup } from '../reconcile/render.js';
import type { ManifestDocument } from './load.js';

export interface Workspace {
  readonly layers: readonly ContextLayer[];
  readonly vmContexts: readonly VMContext[];
  readonly policies: readonly MigrationPolicy[];
  sources(namespace: string): SourceLookup;
}

/** Objects without metadata.namespace land in `defaultNamespace`, as with `kubectl apply -n`. */
export function buildWorkspace(documents: readonly ManifestDocument[], defaultNamespace = 'default'): Workspace {
  const layers: ContextLayer[] = [];
  const vmContexts: VMContext[] = [];
  const policies: MigrationPolicy[] = [];
  const configMaps = new Map<string, Record<string, Buffer>>();
  const secrets = new Map<string, Record<string, Buffer>>();
  for (const { object } of documents) {
    if (!isRecord(object) || !isRecord(object.metadata)) continue;
    const namespace = typeof object.metadata.namespace === 'string' ? object.metadata.namespace : defaultNamespace;
    const withNamespace = { ...object, metadata: { ...object.metadata, namespace } };
    const key = `${namespace}/${String(object.metadata.name)}`;
    switch (`${String(object.apiVersion)}|${String(object.kind)}`) {
      case 'recontext.dev/v1alpha1|ContextLayer':
        layers.push(withNamespace as unknown as ContextLayer);
        break;
      case 'recontext.dev/v1alpha1|VMContext':
        vmContexts.push(withNamespace as unknown as VMContext);
        break;
      case 'recontext.dev/v1alpha1|MigrationPolicy':
        policies.push(withNamespace as unknown as MigrationPolicy);
        break;
      case 'v1|ConfigMap':
        configMaps.set(key, { ...decode(object.data, 'utf8'), ...decode(object.binaryData, 'base64') });
        break;
      case 'v1|Secret':
        secrets.set(key, { ...decode(object.data, 'base64'), ...decode(object.stringData, 'utf8') });
        break;
    }
  }
  return {
    layers,
    vmContexts,
    policies,
    sources: (namespace) => ({
      configMap: (name) => configMaps.get(`${namespace}/${name}`),
      secret: (name) => secrets.get(`${namespace}/${name}`),
    }),
  };
}

function decode(data: unknown, encoding: 'utf8' | 'base64'): Record<string, Buffer> {
  if (!isRecord(data)) return {};
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(String(v), encoding)]));
}
