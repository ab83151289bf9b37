// The operator image's Dockerfile, replayed as far as a machine without Docker allows (no engine,
// no registry here; the image itself is built where Docker is: charts/recontext/README.md). Each
// stage's WORKDIR, COPY and RUN steps run in order in a scratch directory standing in for the
// stage's root, from the repository files the Dockerfile names and nothing else — so a file the
// build needs but the Dockerfile forgets to copy, or a runtime dependency kept in devDependencies
// (pruned in the image), fails here. The final stage's files then run the CLI as the image's USER
// with its ENV. Steps outside the work directory (the /usr/local/bin symlink) are listed, not run.
import { execFile } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = join(import.meta.dirname, '..', '..');

interface Instruction {
  readonly op: string;
  readonly args: string;
}

/** Pure: the Dockerfile's instructions (continuations joined, comments dropped). */
export function parseDockerfile(text: string): Instruction[] {
  const joined = text.replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const [op = '', ...rest] = line.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(' ') };
    });
}

function run(command: string, args: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(command, args, { ...options, maxBuffer: 64 * 1024 * 1024, timeout: 600_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

interface Stage {
  readonly name: string;
  readonly root: string;
  workdir: string;
  env: Record<string, string>;
  user?: string;
  entrypoint?: string[];
}

const scratch = mkdtempSync(join(tmpdir(), 'recontext-image-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

// setpriv drops to the image's USER: that needs root (as CI runs).
const skipReason = process.platform !== 'linux' || process.getuid?.() !== 0 ? 'the Dockerfile replay runs the CLI as the image\'s USER, which needs root on Linux' : undefined;
if (skipReason) console.warn(`SKIPPED: ${skipReason}`);

describe.skipIf(skipReason)('Dockerfile (replayed without Docker)', () => {
  it('builds from only what it copies, and the final stage runs the CLI as its non-root USER', async () => {
    const instructions = parseDockerfile(readFileSync(join(REPO, 'Dockerfile'), 'utf8'));
    const stages: Stage[] = [];
    const notRun: string[] = [];
    const at = (stage: Stage, path: string) => (path.startsWith('/') ? join(stage.root, path) : join(stage.workdir, path));
    for (const { op, args } of instructions) {
      const stage = stages.at(-1);
      if (op === 'FROM') {
        const [image = '', as, name] = args.split(/\s+/);
        expect(image, 'base images are pinned to a version').toMatch(/:[0-9]/);
        const root = join(scratch, `stage-${stages.length}`);
        mkdirSync(root, { recursive: true });
        stages.push({ name: as?.toUpperCase() === 'AS' && name ? name : String(stages.length), root, workdir: root, env: {} });
        continue;
      }
      if (!stage) throw new Error(`${op} before FROM`);
      if (op === 'WORKDIR') {
        stage.workdir = at(stage, args);
        mkdirSync(stage.workdir, { recursive: true });
      } else if (op === 'ENV') {
        for (const pair of args.split(/\s+/)) {
          const [key = '', value = ''] = pair.split('=');
          stage.env[key] = value;
        }
      } else if (op === 'COPY') {
        const words = args.split(/\s+/);
        const from = words[0]?.startsWith('--from=') ? stages.find((s) => s.name === words.shift()!.slice('--from='.length)) : undefined;
        const destination = words.pop()!;
        for (const source of words) {
          const origin = from ? at(from, source) : join(REPO, source);
          const target = destination.endsWith('/') || words.length > 1 ? join(at(stage, destination), basename(source)) : at(stage, destination);
          mkdirSync(dirname(target), { recursive: true });
          cpSync(origin, target, { recursive: true, verbatimSymlinks: true });
        }
      } else if (op === 'RUN') {
        if (/(^|\s)\/(?!app\b)/.test(args)) {
          notRun.push(args); // touches the image's root file system (outside the work directory)
          continue;
        }
        const result = await run('sh', ['-c', args], { cwd: stage.workdir, env: { ...process.env, ...stage.env } });
        expect(result.code, `RUN ${args}\n${result.stdout.slice(-3000)}\n${result.stderr.slice(-3000)}`).toBe(0);
      } else if (op === 'USER') {
        stage.user = args;
      } else if (op === 'ENTRYPOINT') {
        stage.entrypoint = JSON.parse(args) as string[];
      } else if (op !== 'CMD') {
        throw new Error(`the replay does not know ${op}: teach it, or keep the Dockerfile to what it knows`);
      }
    }
    const final = stages.at(-1)!;
    expect(stages.length, 'multi-stage: the build tools stay in the build stage').toBeGreaterThan(1);
    expect(final.user, 'the image runs as a numeric non-root user').toMatch(/^[1-9][0-9]*:[1-9][0-9]*$/);
    expect(final.entrypoint).toEqual(['recontext']);
    expect(notRun).toEqual(['ln -s /app/bin/recontext.js /usr/local/bin/recontext']);
    // No dev dependency left in the final stage (pruned), yet the CLI loads: every import it makes at
    // start is a production dependency.
    expect(() => readFileSync(join(final.workdir, 'node_modules', 'vitest', 'package.json'))).toThrow();

    for (let dir = final.workdir; dir.startsWith(scratch); dir = dirname(dir)) chmodSync(dir, 0o755);
    chmodSync(scratch, 0o755);
    const [uid = '', gid = ''] = final.user!.split(':');
    const asUser = (args: readonly string[]) =>
      run('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', process.execPath, join(final.workdir, 'bin', 'recontext.js'), ...args], {
        cwd: final.workdir,
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...final.env },
      });
    const help = await asUser(['--help']);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/operator/);
    const operatorHelp = await asUser(['operator', '--help']);
    expect(operatorHelp.code, operatorHelp.stderr).toBe(0);
    expect(operatorHelp.stdout).toContain('--driver');
    const validate = await asUser(['validate', join(REPO, 'examples', 'gluster')]);
    expect(validate.code, `${validate.stdout}${validate.stderr}`).toBe(0);
  });
});
