// Shared by the cross-check tests: the expected tree of a list of entries, the tree actually found
// in a directory an independent tool extracted, and running those tools.
import { spawnSync } from 'node:child_process';
import { lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { hasCommand } from '../setup/system-packages.js';
import type { IsoEntry } from '../../src/iso/index.js';
import { skipReason } from '../support/skip.js';

export interface Snapshot {
  readonly kind: 'file' | 'dir' | 'symlink';
  readonly mode: number;
  readonly content?: string;
  readonly target?: string;
}

const DEFAULT_MODE = { file: 0o644, dir: 0o755, symlink: 0o777 } as const;

/** What a faithful reader must reproduce: every entry plus the implicit parent directories. */
export function expectedTree(entries: readonly IsoEntry[]): Map<string, Snapshot> {
  const out = new Map<string, Snapshot>();
  for (const entry of entries) {
    const parts = entry.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (!out.has(parent)) out.set(parent, { kind: 'dir', mode: DEFAULT_MODE.dir });
    }
    const mode = entry.mode ?? DEFAULT_MODE[entry.kind];
    if (entry.kind === 'file') {
      const content = entry.content;
      const bytes = content === undefined ? Buffer.alloc(0) : Buffer.isBuffer(content) ? content : readFileSync(content.fromFile);
      out.set(entry.path, { kind: 'file', mode, content: bytes.toString('base64') });
    } else if (entry.kind === 'symlink') {
      out.set(entry.path, { kind: 'symlink', mode, target: entry.target ?? '' });
    } else {
      out.set(entry.path, { kind: 'dir', mode });
    }
  }
  return new Map([...out.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The tree under `root` as found on disk (lstat: symlinks are not followed). */
export function treeOnDisk(root: string, options: { modes?: boolean } = {}): Map<string, Snapshot> {
  const out = new Map<string, Snapshot>();
  const walk = (dir: string, prefix: string): void => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      const path = prefix === '' ? name : `${prefix}/${name}`;
      const stat = lstatSync(full);
      const mode = options.modes === false ? 0 : stat.mode & 0o7777;
      if (stat.isSymbolicLink()) out.set(path, { kind: 'symlink', mode: options.modes === false ? 0 : 0o777, target: readlinkSync(full) });
      else if (stat.isDirectory()) {
        out.set(path, { kind: 'dir', mode });
        walk(full, path);
      } else out.set(path, { kind: 'file', mode, content: readFileSync(full).toString('base64') });
    }
  };
  walk(root, '');
  return new Map([...out.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export interface ToolResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(command: string, args: readonly string[], options: { input?: Buffer } = {}): ToolResult {
  const result = spawnSync(command, args, { input: options.input, maxBuffer: 1 << 30, env: { ...process.env, LC_ALL: 'C.UTF-8' } });
  return { status: result.status, stdout: result.stdout?.toString('utf8') ?? '', stderr: result.stderr?.toString('utf8') ?? '' };
}

export function runOk(command: string, args: readonly string[]): ToolResult {
  const result = run(command, args);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return result;
}

/** True when `command` is missing; says so out loud, so a skipped cross-check is never silent. */
export function missingTool(command: string, suite: string): boolean {
  return skipReason(suite, hasCommand(command) ? undefined : `${command} is not installed`, 'the vitest global setup installs it with apt-get when run as root') !== undefined;
}

export const FIXED_TIME = new Date('2024-05-06T07:08:09Z');

/**
 * A tree that exercises every feature at once: case-fold collisions, unicode and 255-byte names,
 * empty files and directories, symlinks of every shape, modes, > 8 levels, a directory spanning
 * several sectors, and content streamed from a file on disk.
 */
export function sampleEntries(sourceFile: { path: string; size: number }): IsoEntry[] {
  const entries: IsoEntry[] = [
    { path: 'README', kind: 'file', content: Buffer.from('plain\n') },
    { path: 'readme', kind: 'file', content: Buffer.from('lower\n') },
    { path: 'ReadMe.txt', kind: 'file', content: Buffer.from('mixed\n'), mode: 0o600 },
    { path: 'README.TXT', kind: 'file', content: Buffer.from('upper\n'), mode: 0o640 },
    { path: 'empty', kind: 'file', content: Buffer.alloc(0) },
    { path: 'empty-dir', kind: 'dir', mode: 0o700 },
    { path: 'bin/tool', kind: 'file', content: Buffer.from('#!/bin/sh\necho hi\n'), mode: 0o755 },
    { path: 'bin/setuid', kind: 'file', content: Buffer.from('x'), mode: 0o4755 },
    { path: 'links/relative', kind: 'symlink', target: '../bin/tool' },
    { path: 'links/absolute', kind: 'symlink', target: '/etc/hostname' },
    { path: 'links/dot', kind: 'symlink', target: './x/../y' },
    { path: 'links/root', kind: 'symlink', target: '/' },
    { path: 'links/long', kind: 'symlink', target: `${'very-long-component-'.repeat(20)}/${'b'.repeat(255)}/end` },
    { path: 'unicode/Grüße aus Köln.conf', kind: 'file', content: Buffer.from('köln') },
    { path: 'unicode/日本語のファイル名.txt', kind: 'file', content: Buffer.from('nihongo') },
    { path: 'unicode/emoji-😀-name', kind: 'file', content: Buffer.from('smile') },
    { path: `long/${'n'.repeat(255)}`, kind: 'file', content: Buffer.from('255 ascii') },
    { path: `long/${'é'.repeat(127)}x`, kind: 'file', content: Buffer.from('255 bytes utf-8') },
    { path: `long/${'d'.repeat(200)}/inside`, kind: 'file', content: Buffer.from('in a long dir') },
    { path: 'deep/1/2/3/4/5/6/7/8/9/10/11/12/leaf.txt', kind: 'file', content: Buffer.from('twelve levels down') },
    { path: 'data/streamed.bin', kind: 'file', content: { fromFile: sourceFile.path, size: sourceFile.size } },
    { path: 'data/sectors.bin', kind: 'file', content: Buffer.alloc(3 * 2048 + 17, 0xab) },
    { path: 'spaces and.dots.in.name', kind: 'file', content: Buffer.from('dots') },
  ];
  for (let i = 0; i < 300; i++) {
    entries.push({ path: `many/file-with-a-fairly-long-name-${String(i).padStart(4, '0')}.yaml`, kind: 'file', content: Buffer.from(`n: ${i}\n`) });
  }
  return entries;
}
