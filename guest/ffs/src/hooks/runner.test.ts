import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dirLayer, tempDir, writeTree } from '../../test/layers.js';
import type { Layer } from '../layer.js';
import { Union } from '../union.js';
import { HookRunner, type HookRun } from './runner.js';

// Real hook commands (/bin/sh), real layer directories, no mount: what fires, how often, with what.
describe('HookRunner', () => {
  let base: string;
  let n = 0;
  beforeAll(async () => {
    base = await tempDir('hooks');
  });
  afterAll(async () => rm(base, { recursive: true, force: true }));

  /** A service layer whose hooks append "<hook> <generation> <paths…>" to a log file. */
  async function setup(debounceMs: number, extraHooks: object[] = []): Promise<{ union: Union; runner: HookRunner; service: Layer; logFile: string; layer: (files: Record<string, string>, priority?: number) => Promise<Layer> }> {
    const dir = join(base, `case-${n++}`);
    const logFile = join(dir, 'hooks.log');
    const record = (name: string): string[] => ['/bin/sh', '-c', `echo "${name} $RECONTEXT_GENERATION $(echo $RECONTEXT_CHANGED_PATHS)" >> ${logFile}`];
    const hooks = {
      hooks: [
        { name: 'app', paths: ['/etc/app/'], run: record('app'), debounceMs },
        { name: 'failing', paths: ['/etc/fail'], run: ['/bin/sh', '-c', 'echo broken >&2; exit 3'], debounceMs },
        ...extraHooks,
      ],
    };
    const service = dirLayer('service', await writeTree(join(dir, 'service'), { 'etc/app/a.conf': 'a1', 'etc/other': 'o1', '.recontext/hooks.json': JSON.stringify(hooks) }), 100);
    const union = new Union();
    const runner = new HookRunner({ union, mountpoint: '/mnt/ctx' });
    let k = 0;
    const layer = async (files: Record<string, string>, priority = 300): Promise<Layer> => dirLayer('site', await writeTree(join(dir, `site-${k++}`), files), priority);
    await union.setLayers([service]);
    return { union, runner, service, logFile, layer };
  }
  const lines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');

  it('fires once per change that touches its paths, with every changed path, and not for unrelated changes', async () => {
    const { union, runner, service, logFile, layer } = await setup(20);
    await runner.idle();
    expect(await lines(logFile)).toEqual([]); // the first stack fires nothing
    // Same size, same name, different content (cache-a → cache-b): found by content.
    await union.setLayers([service, await layer({ 'etc/app/a.conf': 'a2', 'etc/app/new.conf': 'n', 'etc/app/sub/deep': 'd' })]);
    await runner.idle();
    expect(await lines(logFile)).toEqual(['app 2 /etc/app/a.conf /etc/app/new.conf /etc/app/sub /etc/app/sub/deep']);
    await union.setLayers([service, await layer({ 'etc/app/a.conf': 'a2', 'etc/app/new.conf': 'n', 'etc/app/sub/deep': 'd', 'etc/other': 'o2' })]);
    await runner.idle();
    expect(await lines(logFile)).toHaveLength(1); // only /etc/other changed
    await union.setLayers([service]); // the site layer leaves: a.conf back to a1, the rest gone
    await runner.idle();
    expect((await lines(logFile))[1]).toBe('app 4 /etc/app/a.conf /etc/app/new.conf /etc/app/sub /etc/app/sub/deep');
    await runner.close();
  });

  it('debounces: changes within debounceMs make one run with all their paths', async () => {
    const { union, runner, service, logFile, layer } = await setup(300);
    const one = await layer({ 'etc/app/one': '1' });
    const two = await layer({ 'etc/app/two': '2' });
    await union.setLayers([service, one]);
    await new Promise((r) => setTimeout(r, 50));
    await union.setLayers([service, two]);
    await runner.idle();
    expect(await lines(logFile)).toEqual(['app 3 /etc/app/one /etc/app/two']);
    await runner.close();
  });

  it('records and reports the exit status; status lists the hooks in force', async () => {
    const { union, runner, service, layer } = await setup(10);
    await union.setLayers([service, await layer({ 'etc/fail': 'x' })]);
    await runner.idle();
    const status = runner.status() as { inForce: { name: string; runs: number; lastRun?: HookRun }[] };
    const failing = status.inForce.find((h) => h.name === 'failing');
    expect(failing?.runs).toBe(1);
    expect(failing?.lastRun).toMatchObject({ exitCode: 3, paths: ['/etc/fail'], output: 'broken', generation: 2 });
    expect(status.inForce.find((h) => h.name === 'app')?.runs).toBe(0);
    await runner.close();
  });

  it('signals the process in a pidfile', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn('/bin/sh', ['-c', 'trap "echo got-hup; exit 0" HUP; while true; do sleep 0.05; done'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const pidfile = join(base, `pid-${n}`);
    await writeTree(base, { [`pid-${n}`]: `${child.pid}\n` });
    const { union, runner, service, layer } = await setup(10, [{ name: 'hup', paths: ['/etc/sig'], signal: { name: 'HUP', pidfile } }]);
    const output = new Promise<string>((resolve) => child.stdout.on('data', (d: Buffer) => resolve(d.toString().trim())));
    await union.setLayers([service, await layer({ 'etc/sig/x': 'x' })]);
    await runner.idle();
    expect(await output).toBe('got-hup');
    const hup = (runner.status() as { inForce: { name: string; lastRun?: HookRun }[] }).inForce.find((h) => h.name === 'hup');
    expect(hup?.lastRun).toMatchObject({ exitCode: 0, signal: 'SIGHUP' });
    await runner.close();
  });
});
