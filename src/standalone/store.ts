// Standalone mode's object store: what an API server would hold, kept from a directory of
// manifests (a GitOps checkout). sync() re-reads the directory and says what changed; statuses
// and finalizers the operator writes are kept beside it in a state directory, so a restart
// continues where it stopped (knows what each VM has) and a VMContext removed from the directory
// while the operator was down still has its devices released.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { ContextLayer, MigrationPolicy, VMContext } from '../crds/index.js';
import { formatPath } from '../crds/validate.js';
import type { Cache, Named, ObjectWriter, SourcesOf } from '../controllers/ports.js';
import { statusChanged } from '../controllers/ports.js';
import { CONTEXT_LAYERS, MIGRATION_POLICIES, VM_CONTEXTS, keyOf, type ResourceRef } from '../kube/resources.js';
import { loadManifests, type ManifestDocument } from '../manifests/load.js';
import { buildWorkspace, type Workspace } from '../manifests/workspace.js';
import { checkObject } from '../reconcile/checks.js';
import type { SourceLookup } from '../reconcile/render.js';
import { realClock, type Clock } from '../runtime/clock.js';

/** Ours, as stored: what the directory says (spec, labels) plus what the operator wrote. */
type Stored = (VMContext | ContextLayer | MigrationPolicy) & { metadata: { generation: number; uid: string; finalizers?: string[]; deletionTimestamp?: string } };

export type StoreChange =
  | { readonly kind: 'VMContext'; readonly object: VMContext }
  | { readonly kind: 'ContextLayer'; readonly object: ContextLayer }
  | { readonly kind: 'MigrationPolicy'; readonly object: MigrationPolicy }
  | { readonly kind: 'ConfigMap' | 'Secret'; readonly namespace: string; readonly name: string };

export interface SyncResult {
  readonly changes: readonly StoreChange[];
  /** Files or documents that could not be used, as file:line: message. Their objects stay as they were. */
  readonly problems: readonly string[];
}

export interface DirectoryStoreOptions {
  /** The manifests: ContextLayers, VMContexts, MigrationPolicies, ConfigMaps, Secrets. */
  readonly directory: string;
  /** Where statuses and finalizers are kept (not inside `directory`: a checkout is not ours to write). */
  readonly stateDirectory: string;
  /** Files of `directory` that are not manifests (the hosts file). */
  readonly exclude?: readonly string[];
  /** Namespace of objects that name none. Default "default". */
  readonly defaultNamespace?: string;
  readonly clock?: Clock;
}

const KINDS = { VMContext: VM_CONTEXTS, ContextLayer: CONTEXT_LAYERS, MigrationPolicy: MIGRATION_POLICIES } as const;
type OurKind = keyof typeof KINDS;

export class DirectoryStore {
  readonly vmContexts: Cache<VMContext>;
  readonly layers: Cache<ContextLayer>;
  readonly policies: Cache<MigrationPolicy>;
  readonly sources: SourcesOf;
  readonly writer: ObjectWriter;
  readonly #o: DirectoryStoreOptions;
  readonly #objects: Record<OurKind, Map<string, Stored>> = { VMContext: new Map(), ContextLayer: new Map(), MigrationPolicy: new Map() };
  /** Where each object was last read from: a file that stops parsing keeps its objects. */
  readonly #fileOf = new Map<string, string>();
  #sources = new Map<string, Record<string, Buffer>>();

  constructor(options: DirectoryStoreOptions) {
    this.#o = options;
    const cache = <T>(kind: OurKind): Cache<T> => ({
      get: (key) => this.#objects[kind].get(key) as T | undefined,
      list: () => [...this.#objects[kind].values()] as T[],
    });
    this.vmContexts = cache<VMContext>('VMContext');
    this.layers = cache<ContextLayer>('ContextLayer');
    this.policies = cache<MigrationPolicy>('MigrationPolicy');
    this.sources = (namespace): SourceLookup => ({
      configMap: (name) => this.#sources.get(`ConfigMap/${namespace}/${name}`),
      secret: (name) => this.#sources.get(`Secret/${namespace}/${name}`),
    });
    this.writer = {
      applyStatus: async (resource, current, status) => this.#write(resource, current, (o) => (statusChanged(o, status) ? { ...o, status } : o)),
      setFinalizers: async (resource, current, finalizers) => {
        await this.#write(resource, current, (o) => ({ ...o, metadata: { ...o.metadata, finalizers: [...finalizers] } }));
      },
    } satisfies ObjectWriter;
    this.#restore();
  }

  /** Re-reads the directory; applies what changed and returns it, to be routed to the controllers. */
  sync(): SyncResult {
    const exclude = new Set((this.#o.exclude ?? []).map((f) => resolve(f)));
    const loaded = loadManifests([this.#o.directory]);
    const problems = loaded.problems.map((p) => `${p.file}${p.line ? `:${p.line}` : ''}: ${p.message}`);
    const brokenFiles = new Set(loaded.problems.map((p) => resolve(p.file)));
    const usable: ManifestDocument[] = [];
    const keepKeys = new Set<string>();
    for (const doc of loaded.documents) {
      if (exclude.has(resolve(doc.file))) continue;
      const verdict = checkObject(doc.object);
      if (verdict.kind === 'ours' && verdict.problems.length > 0) {
        for (const p of verdict.problems) problems.push(`${doc.file}:${doc.lineOf(p.path)}: ${formatPath(p.path)}: ${p.message}`);
        const meta = (doc.object as { kind?: string; metadata?: { name?: string; namespace?: string } }) ?? {};
        if (meta.metadata?.name) keepKeys.add(`${meta.kind}/${meta.metadata.namespace ?? this.#namespace}/${meta.metadata.name}`);
        continue;
      }
      usable.push(doc);
    }
    const workspace = buildWorkspace(usable, this.#namespace);
    const fileOf = new Map<string, string>();
    for (const doc of usable) {
      const o = doc.object as { kind?: string; metadata?: { name?: string; namespace?: string } };
      fileOf.set(`${o.kind}/${o.metadata?.namespace ?? this.#namespace}/${o.metadata?.name}`, resolve(doc.file));
    }
    const kept = (kind: OurKind, key: string) => keepKeys.has(`${kind}/${key}`) || brokenFiles.has(this.#fileOf.get(`${kind}/${key}`) ?? '');

    const changes: StoreChange[] = [];
    changes.push(...this.#syncKind('ContextLayer', workspace.layers, kept));
    changes.push(...this.#syncKind('VMContext', workspace.vmContexts, kept));
    changes.push(...this.#syncKind('MigrationPolicy', workspace.policies, kept));
    for (const [key, file] of fileOf) this.#fileOf.set(key, file);
    changes.push(...this.#syncSources(usable, workspace, brokenFiles));
    return { changes, problems };
  }

  get #namespace(): string {
    return this.#o.defaultNamespace ?? 'default';
  }

  #syncKind(kind: OurKind, wanted: readonly (VMContext | ContextLayer | MigrationPolicy)[], kept: (kind: OurKind, key: string) => boolean): StoreChange[] {
    const objects = this.#objects[kind];
    const changes: StoreChange[] = [];
    const seen = new Set<string>();
    for (const object of wanted) {
      const key = keyOf(object);
      seen.add(key);
      const current = objects.get(key);
      const declared = declaredPart(object);
      if (current && isDeepStrictEqual(declaredPart(current), declared) && !current.metadata.deletionTimestamp) continue;
      const metadata = {
        ...declared.metadata,
        uid: current?.metadata.uid ?? randomUUID(),
        generation: !current ? 1 : isDeepStrictEqual(current.spec, declared.spec) ? current.metadata.generation : current.metadata.generation + 1,
        ...(current?.metadata.finalizers ? { finalizers: current.metadata.finalizers } : {}),
      };
      // A VMContext back in the directory while its devices were being released is simply live again.
      const next = { ...declared, metadata, ...(current?.status ? { status: current.status } : {}) } as Stored;
      this.#put(kind, next);
      changes.push({ kind, object: next } as StoreChange);
    }
    for (const [key, current] of objects) {
      if (seen.has(key) || kept(kind, key) || current.metadata.deletionTimestamp) continue;
      if (current.metadata.finalizers?.length) {
        // As the API server does: mark it, let the controller release what it holds, then forget it.
        const marked = { ...current, metadata: { ...current.metadata, deletionTimestamp: new Date((this.#o.clock ?? realClock).now()).toISOString().replace(/\.\d+Z$/, 'Z') } } as Stored;
        this.#put(kind, marked);
        changes.push({ kind, object: marked } as StoreChange);
      } else {
        this.#remove(kind, key);
        changes.push({ kind, object: current } as StoreChange);
      }
    }
    return changes;
  }

  /** ConfigMaps and Secrets as the workspace decoded them; what changed, by name. (sync() records their files.) */
  #syncSources(documents: readonly ManifestDocument[], workspace: Workspace, brokenFiles: ReadonlySet<string>): StoreChange[] {
    const next = new Map<string, Record<string, Buffer>>();
    for (const doc of documents) {
      const o = doc.object as { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string } };
      if (o.apiVersion !== 'v1' || (o.kind !== 'ConfigMap' && o.kind !== 'Secret') || !o.metadata?.name) continue;
      const namespace = o.metadata.namespace ?? this.#namespace;
      const lookup = workspace.sources(namespace);
      const data = o.kind === 'ConfigMap' ? lookup.configMap(o.metadata.name) : lookup.secret(o.metadata.name);
      if (data) next.set(`${o.kind}/${namespace}/${o.metadata.name}`, data);
    }
    for (const [key, data] of this.#sources) if (!next.has(key) && brokenFiles.has(this.#fileOf.get(key) ?? '')) next.set(key, data);
    const changes: StoreChange[] = [];
    for (const key of new Set([...this.#sources.keys(), ...next.keys()])) {
      if (isDeepStrictEqual(this.#sources.get(key), next.get(key))) continue;
      const [kind, namespace, name] = key.split('/') as ['ConfigMap' | 'Secret', string, string];
      changes.push({ kind, namespace, name });
    }
    this.#sources = next;
    return changes;
  }

  async #write(resource: ResourceRef, current: Named, update: (object: Stored) => Stored): Promise<boolean> {
    const kind = resource.kind as OurKind;
    const key = keyOf(current);
    const object = this.#objects[kind].get(key);
    if (!object) return false; // removed meanwhile, as a 404 would say
    const next = update(object);
    if (next === object) return false;
    if (next.metadata.deletionTimestamp && !next.metadata.finalizers?.length) {
      this.#remove(kind, key);
      return true;
    }
    this.#put(kind, next);
    return true;
  }

  #put(kind: OurKind, object: Stored): void {
    const key = keyOf(object);
    this.#objects[kind].set(key, object);
    const file = this.#stateFile(kind, key);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(`${file}.tmp`, `${JSON.stringify(object, null, 2)}\n`);
    renameSync(`${file}.tmp`, file); // atomic: a crash leaves the old state or the new one
  }

  #remove(kind: OurKind, key: string): void {
    this.#objects[kind].delete(key);
    this.#fileOf.delete(`${kind}/${key}`);
    rmSync(this.#stateFile(kind, key), { force: true });
  }

  #stateFile(kind: OurKind, key: string): string {
    const [namespace, name] = key.split('/') as [string, string];
    return join(this.#o.stateDirectory, 'objects', KINDS[kind].plural, namespace, `${name}.json`);
  }

  /** Loads what the operator wrote before a restart; the next sync() compares the directory with it. */
  #restore(): void {
    for (const kind of Object.keys(KINDS) as OurKind[]) {
      const root = join(this.#o.stateDirectory, 'objects', KINDS[kind].plural);
      for (const namespace of safeList(root)) {
        for (const file of safeList(join(root, namespace)).filter((f) => f.endsWith('.json'))) {
          try {
            const object = JSON.parse(readFileSync(join(root, namespace, file), 'utf8')) as Stored;
            if (object.kind === kind && object.metadata?.name) this.#objects[kind].set(keyOf(object), object);
          } catch {
            // A state file we cannot read is ignored: the directory is the truth, status is rebuilt.
          }
        }
      }
    }
  }
}

/** The part of an object its manifest declares (what a change of the directory can change). */
function declaredPart(object: VMContext | ContextLayer | MigrationPolicy): { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec: unknown } {
  const { name, namespace, labels, annotations } = object.metadata as { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  return {
    apiVersion: object.apiVersion,
    kind: object.kind,
    metadata: { name, ...(namespace ? { namespace } : {}), ...(labels ? { labels } : {}), ...(annotations ? { annotations } : {}) },
    spec: object.spec,
  };
}

function safeList(directory: string): string[] {
  try {
    return readdirSync(directory);
  } catch {
    return [];
  }
}
