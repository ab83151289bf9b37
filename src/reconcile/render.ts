// Rendering one ContextLayer for one VM on one node: resolve file contents, apply templates and
// variants, and name the result by a content digest. Pure: all I/O (ConfigMaps, Secrets, node
// facts) is passed in, so the controller, the CLI and the tests share exactly this code.
import { createHash } from 'node:crypto';
import { API_VERSION, HOOKS_PATH, MANIFEST_PATH, type ContextLayer, type LayerFile, type LayerHook } from '../crds/index.js';
import { mapMatches } from './labels.js';
import { effectivePriority } from './layers.js';
import type { LayerErrorReason } from './reasons.js';
import { parseTemplate, renderTemplate, TemplateError, type TemplateData } from './template.js';

export interface NodeFacts {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface VMFacts {
  readonly name: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** Decoded data of a ConfigMap or Secret (binary-safe), or undefined when it does not exist. */
export interface SourceLookup {
  configMap(name: string): Readonly<Record<string, Buffer>> | undefined;
  secret(name: string): Readonly<Record<string, Buffer>> | undefined;
}

export interface RenderedFile {
  readonly path: string;
  readonly mode: number;
  readonly content: Buffer;
  /** Came from a Secret: its bytes must never reach logs, events, status or metrics. */
  readonly sensitive: boolean;
}

export interface RenderedLayer {
  readonly name: string;
  readonly class: string;
  readonly priority: number;
  /** Sorted by path; the manifest (RESERVED_DIRECTORY) is not among them, see manifestFile(). */
  readonly files: readonly RenderedFile[];
  readonly bytes: number;
  /** sha256:<hex> over the canonical listing; names the image. */
  readonly digest: string;
  /** Whether the content depends on the node (variants or templates reading node.*). */
  readonly nodeDependent: boolean;
  readonly variant?: string;
  /** The layer's hooks as the image's .recontext/hooks.json (the guest agent runs them); absent without hooks. */
  readonly hooks?: Buffer;
}

/** A layer that cannot be rendered as specified; `reason` becomes the condition reason. */
export class LayerError extends Error {
  override readonly name = 'LayerError';
  constructor(
    readonly reason: LayerErrorReason,
    message: string,
  ) {
    super(message);
  }
}

export const DEFAULT_MAX_LAYER_BYTES = 64 * 1024 * 1024;
const DEFAULT_MODE = 0o644;
const SECRET_MODE = 0o600;

export interface RenderContext {
  readonly vm: VMFacts;
  /** Unknown while the VM does not run; layers that need node data then fail with NodeUnknown. */
  readonly node?: NodeFacts;
  readonly sources: SourceLookup;
  readonly maxLayerBytes?: number;
}

/** True when the layer's content may differ between nodes (checked without fetching sources). */
export function layerUsesNode(layer: ContextLayer): boolean {
  if ((layer.spec.variants ?? []).length > 0) return true;
  return (layer.spec.files ?? []).some((f) => f.template && (f.contentFrom !== undefined || safeRoots(f.content ?? '').has('node')));
}

function safeRoots(content: string): ReadonlySet<string> {
  try {
    return parseTemplate(content).roots;
  } catch {
    return new Set();
  }
}

export function renderLayer(layer: ContextLayer, context: RenderContext): RenderedLayer {
  const spec = layer.spec;
  const name = layer.metadata.name;
  const variant = context.node ? (spec.variants ?? []).find((v) => mapMatches(v.nodeSelector, context.node!.labels)) : undefined;
  if ((spec.variants ?? []).length > 0 && !context.node) {
    throw new LayerError('NodeUnknown', `layer ${name} has per-node variants but the VM's node is not known`);
  }
  const values = { ...(spec.values ?? {}), ...(variant?.values ?? {}) };
  const data: TemplateData = {
    node: context.node
      ? {
          name: context.node.name,
          labels: context.node.labels,
          annotations: context.node.annotations ?? {},
          zone: context.node.labels['topology.kubernetes.io/zone'],
          region: context.node.labels['topology.kubernetes.io/region'],
        }
      : undefined,
    vm: { name: context.vm.name, namespace: context.vm.namespace, labels: context.vm.labels },
    values,
  };

  const files = new Map<string, RenderedFile>();
  let nodeDependent = variant !== undefined || (spec.variants ?? []).length > 0;
  const add = (file: RenderedFile, origin: string) => {
    if (files.has(file.path)) throw new LayerError('PathConflict', `layer ${name}: ${origin} writes ${file.path}, which another entry already writes`);
    files.set(file.path, file);
  };

  for (const file of spec.files ?? []) {
    const resolved = resolveContent(file, context.sources, name);
    if (resolved === undefined) continue; // optional and absent
    let content = resolved.content;
    if (file.template) {
      try {
        const template = parseTemplate(content.toString('utf8'));
        if (template.roots.has('node')) {
          nodeDependent = true;
          if (!context.node) throw new LayerError('NodeUnknown', `layer ${name}: ${file.path} reads node data but the VM's node is not known`);
        }
        content = Buffer.from(renderTemplate(template, data), 'utf8');
      } catch (error: unknown) {
        if (error instanceof TemplateError) throw new LayerError('TemplateError', `layer ${name}: ${file.path}: ${error.message}`);
        throw error;
      }
    }
    add({ path: file.path, mode: file.mode ?? (resolved.sensitive ? SECRET_MODE : DEFAULT_MODE), content, sensitive: resolved.sensitive }, `files[${file.path}]`);
  }

  for (const source of spec.sources ?? []) {
    const sensitive = source.secret !== undefined;
    const sourceName = (source.secret ?? source.configMap)!;
    const kind = sensitive ? 'Secret' : 'ConfigMap';
    const entries = sensitive ? context.sources.secret(sourceName) : context.sources.configMap(sourceName);
    if (!entries) {
      if (source.optional) continue;
      throw new LayerError('ContentNotFound', `layer ${name}: ${kind} ${sourceName} not found`);
    }
    for (const key of Object.keys(entries).sort()) {
      if (key === '.' || key === '..' || key.includes('/')) throw new LayerError('PathConflict', `layer ${name}: ${kind} ${sourceName} has key ${JSON.stringify(key)}, not a file name`);
      const path = source.directory ? `${source.directory}/${key}` : key;
      add({ path, mode: source.mode ?? (sensitive ? SECRET_MODE : DEFAULT_MODE), content: entries[key]!, sensitive }, `${kind} ${sourceName}`);
    }
  }

  const sorted = [...files.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  checkTree(sorted, name);
  const bytes = sorted.reduce((sum, f) => sum + f.content.length, 0);
  const limit = context.maxLayerBytes ?? DEFAULT_MAX_LAYER_BYTES;
  if (bytes > limit) throw new LayerError('TooLarge', `layer ${name}: ${bytes} bytes of files exceed the limit of ${limit}`);
  const priority = effectivePriority(spec);
  const hooks = spec.hooks && spec.hooks.length > 0 ? Buffer.from(JSON.stringify({ hooks: spec.hooks.map(canonicalHook) }, null, 2) + '\n') : undefined;
  return {
    name,
    class: spec.class,
    priority,
    files: sorted,
    bytes,
    digest: layerDigest(name, spec.class, priority, sorted, hooks),
    nodeDependent,
    ...(hooks ? { hooks } : {}),
    ...(variant ? { variant: variant.name } : {}),
  };
}

function resolveContent(file: LayerFile, sources: SourceLookup, layer: string): { content: Buffer; sensitive: boolean } | undefined {
  if (file.content !== undefined) return { content: Buffer.from(file.content, 'utf8'), sensitive: false };
  const ref = file.contentFrom?.configMapKeyRef ?? file.contentFrom?.secretKeyRef;
  if (!ref) throw new LayerError('ContentNotFound', `layer ${layer}: ${file.path} has neither content nor contentFrom`);
  const sensitive = file.contentFrom?.secretKeyRef !== undefined;
  const kind = sensitive ? 'Secret' : 'ConfigMap';
  const entries = sensitive ? sources.secret(ref.name) : sources.configMap(ref.name);
  const content = entries?.[ref.key];
  if (content === undefined) {
    if (ref.optional) return undefined;
    throw new LayerError('ContentNotFound', `layer ${layer}: ${file.path}: ${kind} ${ref.name}${entries ? ` has no key ${ref.key}` : ' not found'}`);
  }
  return { content, sensitive };
}

/** Bytes a path segment may have in an image (ISO9660 Rock Ridge names, and most guest file systems). */
export const MAX_SEGMENT_BYTES = 255;

/**
 * Why a path cannot be a file name in an image, or undefined. The API server counts characters,
 * not bytes (its CEL rule allows 255 characters, which may be up to 1020 UTF-8 bytes).
 */
export function pathSegmentProblem(path: string): string | undefined {
  for (const segment of path.split('/')) {
    const bytes = Buffer.byteLength(segment, 'utf8');
    if (bytes > MAX_SEGMENT_BYTES) return `path segment ${JSON.stringify(segment.slice(0, 16))}… has ${bytes} bytes in UTF-8; at most ${MAX_SEGMENT_BYTES}`;
    if (/\p{Cs}/u.test(segment)) return 'path is not well-formed Unicode (lone surrogate)';
  }
  return undefined;
}

/**
 * Each path must be a name an image can hold, and cannot be both a file and a directory (a/b and
 * a/b/c). Input is sorted by path.
 */
function checkTree(files: readonly RenderedFile[], layer: string): void {
  const paths = new Set(files.map((f) => f.path));
  for (const file of files) {
    const problem = pathSegmentProblem(file.path);
    if (problem) throw new LayerError('InvalidPath', `layer ${layer}: ${problem}`);
    const segments = file.path.split('/');
    for (let i = 1; i < segments.length; i++) {
      const parent = segments.slice(0, i).join('/');
      if (paths.has(parent)) throw new LayerError('PathConflict', `layer ${layer}: ${parent} is a file but ${file.path} needs it to be a directory`);
    }
  }
}

/**
 * sha256 over a canonical, versioned listing: identity, the hooks (when there are any: layers
 * without hooks keep the digests they always had), then per file path, mode, size, content hash.
 */
export function layerDigest(name: string, layerClass: string, priority: number, files: readonly RenderedFile[], hooks?: Buffer): string {
  const hash = createHash('sha256');
  hash.update(`${API_VERSION}/layer-image/v1\nname=${name}\nclass=${layerClass}\npriority=${priority}\n`);
  if (hooks) hash.update(`hooks=${createHash('sha256').update(hooks).digest('hex')}\n`);
  for (const file of files) {
    const contentHash = createHash('sha256').update(file.content).digest('hex');
    hash.update(`file\u0000${file.path}\u0000${file.mode.toString(8)}\u0000${file.content.length}\u0000${contentHash}\n`);
  }
  return `sha256:${hash.digest('hex')}`;
}

/**
 * A hook as the guest agent (guest/agent) reads it, in a fixed key order and without the values the API server
 * defaults (false flags): the same spec gives the same bytes, and so the same digest, whether it
 * was read from a file or from the server.
 */
function canonicalHook(hook: LayerHook): Record<string, unknown> {
  return {
    name: hook.name,
    ...(hook.disabled ? { disabled: true } : {}),
    ...(hook.paths ? { paths: hook.paths } : {}),
    ...(hook.run ? { run: hook.run } : {}),
    ...(hook.signal ? { signal: { name: hook.signal.name, pidfile: hook.signal.pidfile } } : {}),
    ...(hook.restart ? { restart: hook.restart } : {}),
    ...(hook.debounceMs !== undefined ? { debounceMs: hook.debounceMs } : {}),
    ...(hook.timeoutMs !== undefined ? { timeoutMs: hook.timeoutMs } : {}),
    ...(hook.appendPaths ? { appendPaths: true } : {}),
  };
}

/** The hooks file of an image (.recontext/hooks.json, the guest agent's format), when the layer has hooks. */
export function hooksFile(layer: RenderedLayer): RenderedFile | undefined {
  return layer.hooks ? { path: HOOKS_PATH, mode: 0o444, content: layer.hooks, sensitive: false } : undefined;
}

/** The manifest every image carries at .recontext/manifest.json; the guest agent identifies layers by it. */
export function manifestFile(layer: RenderedLayer): RenderedFile {
  const manifest = {
    apiVersion: API_VERSION,
    kind: 'LayerImage',
    layer: layer.name,
    class: layer.class,
    priority: layer.priority,
    digest: layer.digest,
    files: layer.files.length,
  };
  return { path: MANIFEST_PATH, mode: 0o444, content: Buffer.from(JSON.stringify(manifest, null, 2) + '\n'), sensitive: false };
}
