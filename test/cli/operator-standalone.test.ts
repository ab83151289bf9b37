// `recontext operator --standalone` as a real process against the test bed's two libvirtds:
// it reads the directory and the hosts file, writes each VMContext's status into the state
// directory, serves metrics, and stops cleanly on SIGTERM. (The VM it targets does not run here,
// so the status says VMNotFound: delivering layers is covered by test/integration/standalone.test.ts.)
// Bad invocations fail before starting, with a message that says what to fix.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testbedSkipReason, useTestbed, type Testbed } from '../testbed/shared.js';
import { REPO, writeSite } from '../testbed/site.js';
import { until } from '../integration/scenario.js';

const CLI = join(REPO, 'test', 'support', 'run-cli.ts');

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: REPO });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('recontext operator --standalone: usage errors', () => {
  it('needs --dir, refuses --libvirt without --standalone, and names a bad hosts file entry', async () => {
    expect((await runCli(['operator', '--standalone'])).stderr).toMatch(/--standalone needs --dir/);
    expect((await runCli(['operator', '--libvirt', 'qemu:///system'])).stderr).toMatch(/--dir, --libvirt and --hosts need --standalone/);
    const dir = mkdtempSync(join(tmpdir(), 'sa-cli-bad-'));
    writeFileSync(join(dir, 'hosts.yaml'), 'hosts:\n  - name: a\n    uri: qemu+tcp://far/system\n');
    const bad = await runCli(['operator', '--standalone', '--dir', dir, '--state-dir', join(dir, '..', 'x-state')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/hosts\[0\]\.uri: libvirt URI "qemu\+tcp:\/\/far\/system": transport "tcp" is not supported/);
    writeFileSync(join(dir, 'hosts.yaml'), 'hosts:\n  - name: a\n    uri: qemu:///system\n');
    const inside = await runCli(['operator', '--standalone', '--dir', dir, '--state-dir', join(dir, 'state'), '--libvirt', 'qemu:///system']);
    expect(inside.stderr).toMatch(/must not be inside the manifest directory/);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe.skipIf(testbedSkipReason())('recontext operator --standalone on the test bed', () => {
  let tb: Testbed;
  const site = mkdtempSync(join(tmpdir(), 'sa-cli-site-'));
  const state = mkdtempSync(join(tmpdir(), 'sa-cli-state-'));

  beforeAll(async () => {
    tb = await useTestbed();
    writeSite(site, { domain: `sa-cli-absent-${process.pid}`, hosts: tb.hosts });
  });
  afterAll(() => {
    rmSync(site, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  });

  it('writes status into the state directory, serves metrics and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'operator', '--standalone', '--dir', site, '--state-dir', state, '--metrics-address', '127.0.0.1:0'], { cwd: REPO });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      const statusFile = join(state, 'objects', 'vmcontexts', 'default', `sa-cli-absent-${process.pid}.json`);
      const status = await until('status file', async () => {
        if (!existsSync(statusFile)) return undefined;
        const object = JSON.parse(readFileSync(statusFile, 'utf8')) as { status?: { conditions?: { type: string; reason: string }[] } };
        return object.status?.conditions?.find((c) => c.type === 'Ready');
      }, 30_000);
      expect(status.reason).toBe('VMNotFound');
      const url = await until('metrics url in the log', async () => /"msg":"serving health and metrics","url":"([^"]+)"/.exec(stderr)?.[1], 10_000);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toMatch(/recontext_recontext_failures_total\{reason="VMNotFound"\} 1/);
      expect(stderr).toContain('"msg":"libvirt host connected"');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stderr).toContain('"msg":"standalone operator stopped"');
  });
});
