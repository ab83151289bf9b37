// `recontext render`: the layers a VM would get, from manifests on disk, as images — no cluster.
import { Command, InvalidArgumentError, Option } from 'commander';
import { formatPath } from '../crds/validate.js';
import type { VMContext } from '../crds/index.js';
import { LayerImageStore } from '../images/layer-image.js';
import { loadManifests } from '../manifests/load.js';
import { buildWorkspace, type Workspace } from '../manifests/workspace.js';
import { checkObject } from '../reconcile/checks.js';
import { parseLabels } from '../reconcile/labels.js';
import { selectLayers } from '../reconcile/layers.js';
import { renderLayer, type NodeFacts, type RenderedLayer } from '../reconcile/render.js';
import { table } from './table.js';

export interface RenderOptions {
  readonly from: string[];
  readonly vm: string;
  readonly namespace: string;
  readonly node?: string;
  readonly nodeLabels?: string;
  readonly out: string;
}

export interface RenderRow {
  readonly layer: RenderedLayer;
  readonly image: string;
  readonly imageBytes: number;
}

/** Finds the VMContext by its own name or by the name of the VM it targets. */
export function findVMContext(workspace: Workspace, vm: string, namespace: string): VMContext | undefined {
  const candidates = workspace.vmContexts.filter((c) => c.metadata.namespace === namespace);
  return (
    candidates.find((c) => c.metadata.name === vm) ??
    candidates.find((c) => c.spec.target.kubevirt?.name === vm || c.spec.target.libvirt?.domain === vm)
  );
}

export async function renderVM(options: RenderOptions): Promise<RenderRow[]> {
  const loaded = loadManifests(options.from);
  const problems = [...loaded.problems.map((p) => `${p.file}${p.line ? `:${p.line}` : ''}: ${p.message}`)];
  for (const doc of loaded.documents) {
    const verdict = checkObject(doc.object);
    if (verdict.kind === 'ours') for (const p of verdict.problems) problems.push(`${doc.file}:${doc.lineOf(p.path)}: ${formatPath(p.path)}: ${p.message}`);
  }
  if (problems.length > 0) throw new Error(`the manifests are not valid (run recontext validate):\n  ${problems.join('\n  ')}`);

  const workspace = buildWorkspace(loaded.documents, options.namespace);
  const vmContext = findVMContext(workspace, options.vm, options.namespace);
  if (!vmContext) {
    const known = workspace.vmContexts.map((c) => c.metadata.name).join(', ') || 'none';
    throw new Error(`no VMContext named ${options.vm} or targeting a VM of that name in namespace ${options.namespace} (found: ${known})`);
  }
  const selection = selectLayers(vmContext, workspace.layers);
  if (selection.missing.length > 0) throw new Error(`VMContext ${vmContext.metadata.name} lists layers that do not exist: ${selection.missing.join(', ')}`);
  const labels = options.nodeLabels ? parseLabels(options.nodeLabels) : {};
  const node: NodeFacts | undefined = options.node || options.nodeLabels ? { name: options.node ?? 'node', labels } : undefined;
  const vm = { name: vmContext.spec.target.kubevirt?.name ?? vmContext.spec.target.libvirt?.domain ?? vmContext.metadata.name, namespace: options.namespace, labels: vmContext.metadata.labels ?? {} };
  const store = new LayerImageStore(options.out);
  const rows: RenderRow[] = [];
  for (const layer of selection.layers) {
    const rendered = renderLayer(layer, { vm, ...(node ? { node } : {}), sources: workspace.sources(options.namespace) });
    const image = await store.ensure(rendered);
    rows.push({ layer: rendered, image: image.path, imageBytes: image.bytes });
  }
  return rows;
}

export function formatRenderTable(rows: readonly RenderRow[]): string {
  return table(
    ['LAYER', 'CLASS', 'PRIORITY', 'FILES', 'BYTES', 'DIGEST', 'VARIANT'],
    rows.map((r) => [
      r.layer.name,
      r.layer.class,
      String(r.layer.priority),
      String(r.layer.files.length),
      String(r.layer.bytes),
      r.layer.digest.slice(0, 'sha256:'.length + 12),
      r.layer.variant ?? (r.layer.nodeDependent ? '(node)' : '-'),
    ]),
  );
}

export function renderCommand(): Command {
  return new Command('render')
    .description('Render the layers a VM would get from manifests on disk (no cluster) into one ISO9660 image per layer, named by content digest.')
    .requiredOption('-f, --filename <path...>', 'manifest files or directories (ContextLayers, VMContexts, ConfigMaps, Secrets)')
    .requiredOption('--vm <name>', 'VMContext name, or the name of the VM a VMContext targets')
    .option('-n, --namespace <namespace>', 'namespace of objects that do not set one', 'default')
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
    .addOption(new Option('-o, --output-dir <dir>', 'directory the images are written to').makeOptionMandatory())
    .addHelpText('after', '\nExample:\n  recontext render -f examples/gluster --vm gluster-client-1 --node node-a \\\n    --node-labels topology.kubernetes.io/zone=zone-a,topology.kubernetes.io/region=eu-north -o out/')
    .action(async (options: { filename: string[]; vm: string; namespace: string; node?: string; nodeLabels?: string; outputDir: string }) => {
      const rows = await renderVM({
        from: options.filename,
        vm: options.vm,
        namespace: options.namespace,
        ...(options.node ? { node: options.node } : {}),
        ...(options.nodeLabels ? { nodeLabels: options.nodeLabels } : {}),
        out: options.outputDir,
      });
      process.stdout.write(formatRenderTable(rows));
      process.stdout.write(`${rows.length} image${rows.length === 1 ? '' : 's'} in ${options.outputDir}\n`);
    });
}
