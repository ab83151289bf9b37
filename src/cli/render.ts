// `recontext render`: the layers a VM would get, from manifests on disk, without a cluster: as
// images (-o), as the merged tree the guest sees (--print), or as that tree's files (--unpack).
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import type { VMContext } from '../crds/index.js';
import { LayerImageStore } from '../images/layer-image.js';
import { loadManifests } from '../manifests/load.js';
import { buildWorkspace, type Workspace } from '../manifests/workspace.js';
import { parseLabels } from '../reconcile/labels.js';
import { selectLayers, whyNotSelected } from '../reconcile/layers.js';
import { mergeLayers, type HiddenFile, type MergedFile } from '../reconcile/merge.js';
import { renderLayer, type NodeFacts, type RenderedLayer } from '../reconcile/render.js';
import { table } from './table.js';
import { formatProblem, validatePaths } from './validate.js';

export interface RenderOptions {
  readonly from: string[];
  readonly vm: string;
  readonly namespace: string;
  readonly node?: string;
  readonly nodeLabels?: string;
  /** Where the images are written; none are written without it. */
  readonly out?: string;
}

export interface RenderRow {
  readonly layer: RenderedLayer;
  /** How the layer's variant was chosen, in words: the variant's name, "none matched", or "-" without variants. */
  readonly variant: string;
  readonly image?: string;
  readonly imageBytes?: number;
}

export interface RenderResult {
  readonly vmContext: string;
  readonly namespace: string;
  /** Highest priority first, as the guest stacks them. */
  readonly rows: readonly RenderRow[];
  /** Layers of the namespace the VM does not get, and why. */
  readonly notSelected: readonly { readonly name: string; readonly why: string }[];
  /** The merged view: each path from the layer that wins it. */
  readonly files: readonly MergedFile[];
  readonly hidden: readonly HiddenFile[];
}

/** Finds the VMContext by its own name or by the name of the VM it targets. */
export function findVMContext(workspace: Workspace, vm: string, namespace: string): VMContext | undefined {
  const candidates = workspace.vmContexts.filter((c) => c.metadata.namespace === namespace);
  return (
    candidates.find((c) => c.metadata.name === vm) ??
    candidates.find((c) => c.spec.target.kubevirt?.name === vm || c.spec.target.libvirt?.domain === vm)
  );
}

export async function renderVM(options: RenderOptions): Promise<RenderResult> {
  const report = validatePaths(options.from, { namespace: options.namespace });
  if (report.problems.length > 0) throw new Error(`the manifests are not valid (recontext validate says):\n  ${report.problems.map(formatProblem).join('\n  ')}`);

  const workspace = buildWorkspace(loadManifests(options.from).documents, options.namespace);
  const vmContext = findVMContext(workspace, options.vm, options.namespace);
  if (!vmContext) throw new Error(notFound(workspace, options.vm, options.namespace));
  const selection = selectLayers(vmContext, workspace.layers);
  if (selection.missing.length > 0) throw new Error(`VMContext ${vmContext.metadata.name} lists layers that do not exist: ${selection.missing.join(', ')}`);
  const labels = options.nodeLabels ? parseLabels(options.nodeLabels) : {};
  const node: NodeFacts | undefined = options.node || options.nodeLabels ? { name: options.node ?? 'node', labels } : undefined;
  const vm = { name: vmContext.spec.target.kubevirt?.name ?? vmContext.spec.target.libvirt?.domain ?? vmContext.metadata.name, namespace: options.namespace, labels: vmContext.metadata.labels ?? {} };
  const store = options.out ? new LayerImageStore(options.out) : undefined;
  const rows: RenderRow[] = [];
  for (const layer of selection.layers) {
    const rendered = renderLayer(layer, { vm, ...(node ? { node } : {}), sources: workspace.sources(options.namespace) });
    const variants = layer.spec.variants ?? [];
    const variant = rendered.variant ?? (variants.length > 0 ? `none of ${variants.map((v) => v.name).join(', ')} matched` : '-');
    const image = store ? await store.ensure(rendered) : undefined;
    rows.push({ layer: rendered, variant, ...(image ? { image: image.path, imageBytes: image.bytes } : {}) });
  }
  const chosen = new Set(selection.layers.map((l) => l.metadata.name));
  const notSelected = workspace.layers
    .filter((l) => l.metadata.namespace === options.namespace && !chosen.has(l.metadata.name))
    .map((l) => ({ name: l.metadata.name, why: whyNotSelected(vmContext, l) }));
  const merged = mergeLayers(rows.map((r) => r.layer));
  return { vmContext: vmContext.metadata.name, namespace: options.namespace, rows, notSelected, files: merged.files, hidden: merged.hidden };
}

/** No VMContext for --vm here: say where there is one (another namespace), or what there is. */
function notFound(workspace: Workspace, vm: string, namespace: string): string {
  const matches = (c: VMContext) => c.metadata.name === vm || c.spec.target.kubevirt?.name === vm || c.spec.target.libvirt?.domain === vm;
  const elsewhere = [...new Set(workspace.vmContexts.filter(matches).map((c) => c.metadata.namespace!))].sort();
  const here = workspace.vmContexts.filter((c) => c.metadata.namespace === namespace).map((c) => c.metadata.name);
  const start = `no VMContext named ${vm} or targeting a VM of that name in namespace ${namespace}`;
  if (elsewhere.length > 0) return `${start}; there is one in namespace ${elsewhere.join(', ')}: add -n ${elsewhere[0]}`;
  return `${start} (${here.length > 0 ? `it has: ${here.join(', ')}` : 'it has none'})`;
}

export function formatRenderTable(rows: readonly RenderRow[]): string {
  return table(
    ['LAYER', 'CLASS', 'PRIORITY', 'FILES', 'BYTES', 'DIGEST', 'VARIANT', 'PER NODE'],
    rows.map((r) => [
      r.layer.name,
      r.layer.class,
      String(r.layer.priority),
      String(r.layer.files.length),
      String(r.layer.bytes),
      r.layer.digest.slice(0, 'sha256:'.length + 12),
      r.variant,
      r.layer.nodeDependent ? 'yes' : 'no',
    ]),
  );
}

/** The merged tree, indented by directory, each file with its mode, size and winning layer. Contents are not shown. */
export function formatTree(result: Pick<RenderResult, 'files' | 'hidden'>): string {
  const rows: string[][] = [];
  let previous: string[] = [];
  for (const file of result.files) {
    const segments = file.path.split('/');
    const directories = segments.slice(0, -1);
    let common = 0;
    while (common < directories.length && common < previous.length && directories[common] === previous[common]) common++;
    for (let depth = common; depth < directories.length; depth++) rows.push([`${'  '.repeat(depth)}${directories[depth]}/`, '', '', '']);
    rows.push([`${'  '.repeat(directories.length)}${segments.at(-1)}`, file.mode.toString(8).padStart(4, '0'), String(file.content.length), file.layer]);
    previous = directories;
  }
  let text = table(['PATH', 'MODE', 'BYTES', 'LAYER'], rows)
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n');
  for (const h of result.hidden) text += `${h.path} of layer ${h.layer} is hidden by layer ${h.by}\n`;
  return text;
}

/** Writes the merged tree into `directory` (created; an existing one must be empty: nothing of the user's is overwritten), with the modes the guest sees. */
export function unpack(files: readonly MergedFile[], directory: string): void {
  refuseNonEmpty(directory);
  for (const file of files) {
    const target = join(directory, file.path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, file.content, { mode: file.mode });
    chmodSync(target, file.mode); // writeFileSync's mode is masked by the umask
  }
}

function refuseNonEmpty(directory: string): void {
  if (existsSync(directory) && readdirSync(directory).length > 0) throw new Error(`--unpack ${directory}: the directory is not empty; name a new or empty one`);
}

export function renderCommand(): Command {
  return new Command('render')
    .description(
      'Render the layers a VM would get from manifests on disk (no cluster): one ISO9660 image per layer named by content digest (-o), the merged tree the guest sees with the layer each file comes from (--print), or that tree as files (--unpack).',
    )
    .requiredOption('-f, --filename <path...>', 'manifest files or directories (ContextLayers, VMContexts, ConfigMaps, Secrets)')
    .requiredOption('--vm <name>', 'VMContext name, or the name of the VM a VMContext targets')
    .option('-n, --namespace <namespace>', 'namespace of the VMContext; also that of objects that do not set one', 'default')
    .option('--node <name>', 'name of the node the VM runs on (for templates and variants)')
    .option('--node-labels <k=v,...>', 'labels of that node, e.g. topology.kubernetes.io/zone=zone-a', (value: string) => {
      // Checked while parsing the command line, so a malformed value is a usage error (exit 2).
      try {
        parseLabels(value);
      } catch (error: unknown) {
        throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
      }
      return value;
    })
    .option('-o, --output-dir <dir>', 'write one image per layer here')
    .option('--print', 'print the merged tree the guest sees: each file with its mode, size and the layer it comes from (not its content)', false)
    .option('--unpack <dir>', 'write the merged tree into this directory, as the guest would read it')
    .addHelpText(
      'after',
      [
        '',
        'The table lists the layers highest priority first (the first wins a path), the variant chosen',
        'for the node, and whether the layer depends on the node. Layers of the namespace the VM does',
        'not get are listed with the reason.',
        'Exit status: 0 rendered, 1 invalid manifests or a layer that cannot render, 2 usage error.',
        'Examples:',
        '  recontext render -f examples/gluster --vm gluster-client-1 --node node-a \\',
        '    --node-labels topology.kubernetes.io/zone=zone-a,topology.kubernetes.io/region=eu-north --print',
        '  recontext render -f examples/gluster --vm gluster-client-1 --node node-a \\',
        '    --node-labels topology.kubernetes.io/zone=zone-a,topology.kubernetes.io/region=eu-north -o out/',
      ].join('\n'),
    )
    .action(async (options: { filename: string[]; vm: string; namespace: string; node?: string; nodeLabels?: string; outputDir?: string; print: boolean; unpack?: string }) => {
      if (options.unpack) refuseNonEmpty(options.unpack); // before any image is written
      const result = await renderVM({
        from: options.filename,
        vm: options.vm,
        namespace: options.namespace,
        ...(options.node ? { node: options.node } : {}),
        ...(options.nodeLabels ? { nodeLabels: options.nodeLabels } : {}),
        ...(options.outputDir ? { out: options.outputDir } : {}),
      });
      const out: string[] = [`VMContext ${result.namespace}/${result.vmContext}: ${result.rows.length} layer${result.rows.length === 1 ? '' : 's'}, highest priority first`, formatRenderTable(result.rows)];
      if (result.notSelected.length > 0) out.push(`not selected:\n${result.notSelected.map((n) => `  ${n.name}: ${n.why}\n`).join('')}`);
      if (options.print) out.push(formatTree(result));
      if (options.unpack) {
        unpack(result.files, options.unpack);
        out.push(`${result.files.length} file${result.files.length === 1 ? '' : 's'} unpacked into ${options.unpack}\n`);
      }
      if (options.outputDir) out.push(`${result.rows.length} image${result.rows.length === 1 ? '' : 's'} in ${options.outputDir}\n`);
      else if (!options.print && !options.unpack) out.push('nothing written: add -o DIR for images, --print for the merged tree, --unpack DIR for its files\n');
      process.stdout.write(out.join('\n'));
    });
}
