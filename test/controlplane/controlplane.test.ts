// The test control plane itself: auth as configured, and every fault lever works (restart,
// SIGSTOP/SIGCONT, watch expiry by etcd compaction), on a private instance so the shared one
// used by other test files is never disturbed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RESTRICTED_USER, ownsPid, type ControlPlane } from './index.js';
import { controlPlaneSkipReason, startExclusiveControlPlane, useControlPlane } from './shared.js';

interface Response {
  readonly status: number;
  readonly body: string;
}

/** One HTTPS call with the CA from the kubeconfig material; resolves early with the first line of a watch. */
function call(plane: ControlPlane, method: string, path: string, options: { body?: unknown; token?: string; firstLine?: boolean; timeoutMs?: number } = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${plane.server}${path}`,
      {
        method,
        ca: plane.caCert,
        headers: { authorization: `Bearer ${options.token ?? plane.adminToken}`, 'content-type': 'application/json' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
          if (options.firstLine && body.includes('\n')) {
            resolve({ status: res.statusCode ?? 0, body: body.slice(0, body.indexOf('\n')) });
            req.destroy();
          }
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      resolve({ status: -1, body: 'timeout' });
    }, options.timeoutMs ?? 10_000);
    req.on('close', () => clearTimeout(timer));
    req.on('error', (error) => {
      if (!options.firstLine) reject(error);
    });
    req.end(options.body === undefined ? undefined : JSON.stringify(options.body));
  });
}

describe.skipIf(controlPlaneSkipReason())('test control plane (private instance)', () => {
  let plane: ControlPlane;

  beforeAll(async () => {
    plane = await startExclusiveControlPlane();
  });

  afterAll(async () => {
    await plane?.stop();
  });

  it('serves on loopback with TLS the kubeconfig trusts, and kubectl works', async () => {
    expect(plane.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(plane.etcdUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await call(plane, 'GET', '/readyz')).body).toBe('ok');
    const version = await plane.kubectl(['version', '-o', 'json']);
    expect(version.code, version.stderr).toBe(0);
    const parsed = JSON.parse(version.stdout) as { serverVersion: { gitVersion: string }; clientVersion: { gitVersion: string } };
    expect(parsed.serverVersion.gitVersion).toBe(plane.binaries.versions.kubernetes);
    expect(parsed.clientVersion.gitVersion).toBe(plane.binaries.versions.kubernetes);
  });

  it('gives kubeconfigs that @kubernetes/client-node loads (CA data and token) for both users', async () => {
    const admin = new KubeConfig();
    admin.loadFromFile(plane.kubeconfigPath);
    const namespaces = await admin.makeApiClient(CoreV1Api).listNamespace();
    expect(namespaces.items.map((n) => n.metadata?.name)).toContain('kube-system');
    const restricted = new KubeConfig();
    restricted.loadFromFile(plane.restrictedKubeconfigPath);
    await expect(restricted.makeApiClient(CoreV1Api).listNamespace()).rejects.toMatchObject({ code: 403 });
  });

  it('authenticates the admin into system:masters and the restricted token with no extra groups', async () => {
    const admin = await plane.kubectl(['auth', 'whoami', '-o', 'json']);
    expect(admin.code, admin.stderr).toBe(0);
    expect(JSON.parse(admin.stdout)).toMatchObject({ status: { userInfo: { groups: ['system:masters', 'system:authenticated'] } } });
    const restricted = await plane.kubectl(['auth', 'whoami', '-o', 'json'], { kubeconfig: plane.restrictedKubeconfigPath });
    expect(restricted.code, restricted.stderr).toBe(0);
    expect(JSON.parse(restricted.stdout)).toMatchObject({ status: { userInfo: { username: RESTRICTED_USER, groups: ['system:authenticated'] } } });
    expect((await call(plane, 'GET', '/readyz', { token: 'not-a-token' })).status).toBe(401);
  });

  it('enforces RBAC: the restricted user is forbidden until a binding allows it', async () => {
    const asRestricted = { kubeconfig: plane.restrictedKubeconfigPath };
    const denied = await plane.kubectl(['get', 'configmaps', '-n', 'default'], asRestricted);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain('forbidden');
    const role = await plane.kubectl(['create', 'role', 'read-cm', '-n', 'default', '--verb=list,get', '--resource=configmaps']);
    expect(role.code, role.stderr).toBe(0);
    const binding = await plane.kubectl(['create', 'rolebinding', 'read-cm', '-n', 'default', '--role=read-cm', `--user=${RESTRICTED_USER}`]);
    expect(binding.code, binding.stderr).toBe(0);
    const allowed = await plane.kubectl(['get', 'configmaps', '-n', 'default'], asRestricted);
    expect(allowed.code, allowed.stderr).toBe(0);
    const stillDenied = await plane.kubectl(['get', 'secrets', '-n', 'default'], asRestricted);
    expect(stillDenied.stderr).toContain('forbidden');
    // config/rbac binds the ServiceAccount, not a user name: that subject must match the token too.
    const [namespace, name] = RESTRICTED_USER.split(':').slice(2);
    const saBinding = await plane.kubectl(['create', 'rolebinding', 'read-cm-sa', '-n', 'kube-system', '--role=read-cm', `--serviceaccount=${namespace}:${name}`]);
    expect(saBinding.code, saBinding.stderr).toBe(0);
    const saRole = await plane.kubectl(['create', 'role', 'read-cm', '-n', 'kube-system', '--verb=list', '--resource=configmaps']);
    expect(saRole.code, saRole.stderr).toBe(0);
    const viaServiceAccount = await plane.kubectl(['get', 'configmaps', '-n', 'kube-system'], asRestricted);
    expect(viaServiceAccount.code, viaServiceAccount.stderr).toBe(0);
  });

  it('pauses (SIGSTOP: requests hang) and resumes (SIGCONT)', async () => {
    plane.pauseApiServer();
    try {
      expect((await call(plane, 'GET', '/readyz', { timeoutMs: 2_000 })).status).toBe(-1);
    } finally {
      plane.resumeApiServer();
    }
    expect((await call(plane, 'GET', '/readyz')).body).toBe('ok');
  });

  it('restarts the API server on the same port, keeping the data in etcd', async () => {
    const created = await call(plane, 'POST', '/api/v1/namespaces/default/configmaps', { body: { metadata: { name: 'survives-restart' }, data: { a: '1' } } });
    expect(created.status, created.body).toBe(201);
    const pidBefore = plane.state().pids.apiServer;
    await plane.restartApiServer();
    expect(plane.state().pids.apiServer).not.toBe(pidBefore);
    expect(ownsPid(pidBefore, plane.binaries.kubeApiserver)).toBe(false);
    const read = await call(plane, 'GET', '/api/v1/namespaces/default/configmaps/survives-restart');
    expect(read.status).toBe(200);
    expect(JSON.parse(read.body)).toMatchObject({ data: { a: '1' } });
  });

  it('expires watches from an old resourceVersion with 410 Gone after compaction', async () => {
    const created = await call(plane, 'POST', '/api/v1/namespaces/default/configmaps', { body: { metadata: { name: 'compacted' }, data: { n: '0' } } });
    const oldVersion = (JSON.parse(created.body) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
    for (let n = 1; n <= 3; n++) {
      const updated = await call(plane, 'PUT', '/api/v1/namespaces/default/configmaps/compacted', { body: { metadata: { name: 'compacted' }, data: { n: String(n) } } });
      expect(updated.status).toBe(200);
    }
    const watch = `/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${oldVersion}`;
    expect(JSON.parse((await call(plane, 'GET', watch, { firstLine: true })).body)).toMatchObject({ type: 'MODIFIED' });
    const revision = await plane.expireWatches();
    expect(revision).toBeGreaterThan(Number(oldVersion));
    const expired = JSON.parse((await call(plane, 'GET', watch, { firstLine: true })).body) as unknown;
    expect(expired).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
    // A fresh list still works: the client's way out of 410.
    expect((await call(plane, 'GET', '/api/v1/namespaces/default/configmaps')).status).toBe(200);
  });

  it('compactEtcd alone expires watches when the watch cache is off', async () => {
    const uncached = await startExclusiveControlPlane({ watchCache: false });
    try {
      const created = await call(uncached, 'POST', '/api/v1/namespaces/default/configmaps', { body: { metadata: { name: 'c' }, data: { n: '0' } } });
      const oldVersion = (JSON.parse(created.body) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
      // Two writes: compacting at exactly oldVersion+1 keeps that event but not its previous
      // value, and the server then answers 500 "etcd event received with PrevKv=nil", not 410.
      for (const n of ['1', '2']) await call(uncached, 'PUT', '/api/v1/namespaces/default/configmaps/c', { body: { metadata: { name: 'c' }, data: { n } } });
      await uncached.compactEtcd();
      const expired = JSON.parse((await call(uncached, 'GET', `/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${oldVersion}`, { firstLine: true })).body) as unknown;
      expect(expired, JSON.stringify(expired)).toMatchObject({ type: "ERROR", object: { code: 410 } });
    } finally {
      await uncached.stop();
    }
  });

  it('removes directories of dead owners on start; stop() ends both process groups and removes its own', async () => {
    const base = mkdtempSync(join(tmpdir(), 'recontext-cp-test-'));
    const orphan = join(base, 'recontext-cp-orphan');
    mkdirSync(orphan);
    const dead = spawnSync('true').pid;
    writeFileSync(join(orphan, 'owner.pid'), String(dead));
    const extra = await startExclusiveControlPlane({ baseDir: base });
    expect(existsSync(orphan)).toBe(false);
    const { pids, dir } = extra.state();
    expect(ownsPid(pids.apiServer, extra.binaries.kubeApiserver)).toBe(true);
    expect(ownsPid(pids.etcd, extra.binaries.etcd)).toBe(true);
    extra.pauseApiServer(); // stop() must cope with a paused server too
    await extra.stop();
    expect(ownsPid(pids.apiServer, extra.binaries.kubeApiserver)).toBe(false);
    expect(ownsPid(pids.etcd, extra.binaries.etcd)).toBe(false);
    expect(existsSync(dir)).toBe(false);
    rmSync(base, { recursive: true, force: true });
  });
});

describe.skipIf(controlPlaneSkipReason())('shared control plane', () => {
  it('is one instance per run, reachable from any test file', async () => {
    const [a, b] = await Promise.all([useControlPlane(), useControlPlane()]);
    expect(a.server).toBe(b.server);
    const namespaces = await a.kubectl(['get', 'namespaces', '-o', 'name']);
    expect(namespaces.code, namespaces.stderr).toBe(0);
    expect(namespaces.stdout).toContain('namespace/default');
  });
});
