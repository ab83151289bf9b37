// recontext-ffs: the Flexible File System on the command line (any Linux host with FUSE).
//   recontext-ffs mount MOUNTPOINT [--layer NAME=DIR:PRIORITY]... [--control SOCKET] [--devices HELPER [--media-dir DIR]]
//   recontext-ffs set MOUNTPOINT [--layer NAME=DIR:PRIORITY]...
//   recontext-ffs status MOUNTPOINT [--json]
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { controlRequest, defaultControlPath, serveControl } from './control.js';
import { DeviceWatcher } from './devices.js';
import { startFfs } from './ffs.js';
import { LayerError, directoryLayer, parseLayerArgument, type Layer } from './layer.js';
import { jsonLogger } from './log.js';
import { STATUS_FILE } from './union.js';

const USAGE = `usage:
  recontext-ffs mount MOUNTPOINT [--layer NAME=DIR:PRIORITY]... [--control SOCKET] [--devices HELPER [--media-dir DIR]]
      Serve the read-only union of the layers at MOUNTPOINT until SIGTERM/SIGINT, then unmount.
      Higher PRIORITY wins. Logs are JSON lines on stderr.
      --devices: also serve the context images on CD-ROM drives, found by their manifest and
      followed as the host swaps them; HELPER is the ffs-devd binary (native/ffs-devd.c), which
      mounts each medium under --media-dir (default /run/recontext-ffs/media).
  recontext-ffs set MOUNTPOINT [--layer NAME=DIR:PRIORITY]...
      Replace the whole stack of a running mount, atomically (no --layer: an empty stack).
  recontext-ffs status MOUNTPOINT [--json]
      Print the stack (name, class, priority, digest, source, since) and the last change.
`;

class UsageError extends Error {}

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'mount':
        return await mountCommand(rest);
      case 'set':
        return await setCommand(rest);
      case 'status':
        return await statusCommand(rest);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (error: unknown) {
    if (error instanceof UsageError || error instanceof LayerError) {
      process.stderr.write(`recontext-ffs: ${error.message}\n${error instanceof UsageError ? USAGE : ''}`);
      return 2;
    }
    process.stderr.write(`recontext-ffs: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

function parse(args: readonly string[], options: NonNullable<ParseArgsConfig['options']>): { mountpoint: string; values: Record<string, unknown> } {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (error: unknown) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (parsed.positionals.length !== 1) throw new UsageError('exactly one MOUNTPOINT is needed');
  return { mountpoint: resolve(parsed.positionals[0] as string), values: parsed.values as Record<string, unknown> };
}

async function layersFrom(values: Record<string, unknown>): Promise<Layer[]> {
  const specs = ((values['layer'] as string[] | undefined) ?? []).map((a) => parseLayerArgument(a));
  return Promise.all(specs.map((s) => directoryLayer(s)));
}

async function mountCommand(args: readonly string[]): Promise<number> {
  const { mountpoint, values } = parse(args, { layer: { type: 'string', multiple: true }, control: { type: 'string' }, devices: { type: 'string' }, 'media-dir': { type: 'string' } });
  const log = jsonLogger();
  const layers = await layersFrom(values);
  const controlPath = resolve((values['control'] as string | undefined) ?? defaultControlPath(mountpoint));
  const helper = values['devices'] as string | undefined;
  const mediaDir = resolve((values['media-dir'] as string | undefined) ?? '/run/recontext-ffs/media');
  const ffs = await startFfs({ mountpoint, layers, log, status: { control: controlPath, ...(helper ? { devices: { helper, mediaDir } } : {}) } });
  const devices = helper
    ? new DeviceWatcher({ helper: [resolve(helper), mediaDir], fixed: layers, setLayers: async (next) => void (await ffs.union.setLayers(next)), released: (root) => ffs.union.released(root), logger: log })
    : undefined;
  if (devices) {
    await devices.start();
    log.info('watching context devices', { helper, mediaDir, media: devices.media.map((m) => `${m.dev}:${m.layer.name}`) });
  }
  const control = await serveControl(controlPath, async (request) => {
    if (request.op === 'status') return ffs.union.status();
    const next = await Promise.all(request.layers.map((l) => directoryLayer(l)));
    if (devices) await devices.setFixed(next);
    else await ffs.union.setLayers(next);
    return { generation: ffs.union.stack.generation };
  });
  log.info('control socket ready', { control: controlPath });
  const stop = async (signal: string): Promise<void> => {
    log.info('stopping', { signal });
    await control.close().catch(() => undefined);
    await devices?.stop();
    await ffs.close();
  };
  await new Promise<void>((done) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      void stop(signal).then(done, (error: unknown) => {
        log.error('unmount failed', { error: error instanceof Error ? error.message : String(error) });
        process.exitCode = 1;
        done();
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}

async function readStatus(mountpoint: string): Promise<Record<string, unknown>> {
  // Read through the mount: this process does not serve it.
  const text = await readFile(`${mountpoint}${STATUS_FILE}`, 'utf8').catch((error: unknown) => {
    throw new Error(`${mountpoint} is not a recontext-ffs mount (${error instanceof Error ? error.message : String(error)})`);
  });
  return JSON.parse(text) as Record<string, unknown>;
}

async function setCommand(args: readonly string[]): Promise<number> {
  const { mountpoint, values } = parse(args, { layer: { type: 'string', multiple: true } });
  const specs = ((values['layer'] as string[] | undefined) ?? []).map((a) => parseLayerArgument(a));
  const status = await readStatus(mountpoint);
  if (typeof status['control'] !== 'string') throw new Error(`${mountpoint}: its status names no control socket (not mounted by recontext-ffs mount)`);
  const result = (await controlRequest(status['control'], { op: 'set', layers: specs })) as { generation: number };
  process.stdout.write(`generation ${result.generation}: ${specs.map((s) => `${s.name}:${s.priority}`).join(' ') || '(empty)'}\n`);
  return 0;
}

interface StatusLayer {
  name: string;
  class?: string;
  priority: number;
  digest?: string;
  source: { kind: string; path?: string; device?: string };
  since: string;
}

async function statusCommand(args: readonly string[]): Promise<number> {
  const { mountpoint, values } = parse(args, { json: { type: 'boolean' } });
  const status = await readStatus(mountpoint);
  if (values['json'] === true) {
    process.stdout.write(JSON.stringify(status, null, 2) + '\n');
    return 0;
  }
  const layers = (status['layers'] as StatusLayer[] | undefined) ?? [];
  const rows = [
    ['PRIORITY', 'NAME', 'CLASS', 'DIGEST', 'SOURCE', 'SINCE'],
    ...layers.map((l) => [
      String(l.priority),
      l.name,
      l.class ?? '-',
      l.digest !== undefined ? l.digest.slice(0, 19) : '-',
      l.source.kind === 'device' ? `device ${l.source.device ?? '?'}` : `dir ${l.source.path ?? '?'}`,
      l.since,
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  process.stdout.write(`${mountpoint}: generation ${String(status['generation'])}, last change ${String(status['changedAt'])}\n`);
  for (const r of rows) process.stdout.write(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ') + '\n');
  return 0;
}
