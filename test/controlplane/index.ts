// A real Kubernetes control plane for tests: etcd + kube-apiserver as processes on 127.0.0.1
// with random free ports, started the way controller-runtime's envtest does it, plus the fault
// levers later tests need (restart, SIGSTOP/SIGCONT, etcd compaction). The processes are run by
// processes.ts, the endpoints probed by http.ts; the binaries come from build.ts.
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { ensureBinaries, formatElapsed, isAlive, type ControlPlaneBinaries } from './build.js';
import { httpGet, httpPost, type HttpResponse } from './http.js';
import { freePort, ManagedProcess, onProcessExit, ownsPid, terminateGroup, waitFor } from './processes.js';

export { ControlPlaneUnavailable, ensureBinaries, findBinaries, cacheRoot, controlPlaneVersions } from './build.js';
export { ownsPid } from './processes.js';
export type { ControlPlaneBinaries, ControlPlaneVersions } from './build.js';

/** The restricted identity: what the operator runs as in the RBAC tests. */
export const RESTRICTED_USER = 'system:serviceaccount:recontext-system:recontext';
export const ADMIN_USER = 'recontext-test-admin';

export interface ControlPlaneOptions {
  /** Prebuilt binaries; default: ensureBinaries() (builds into the cache when missing). */
  readonly binaries?: ControlPlaneBinaries;
  /** Parent of the per-instance directory (data, certs, logs, kubeconfigs); default os.tmpdir(). */
  readonly baseDir?: string;
  /** Keep the instance directory after stop(), e.g. to read the logs. */
  readonly keepDir?: boolean;
  /**
   * Processes outlive this Node process (testenv:up). Otherwise they also exit by themselves
   * when this process dies, even by SIGKILL, so a crashed test run leaks nothing.
   */
  readonly detached?: boolean;
  /**
   * The API server's watch cache (default on, as in production). With it off, watches are
   * served from etcd directly, so compactEtcd() alone makes an older resourceVersion 410 Gone.
   */
  readonly watchCache?: boolean;
  readonly extraApiServerFlags?: readonly string[];
  readonly readyTimeoutMs?: number;
  readonly log?: (line: string) => void;
}

/** What a client needs to talk to the control plane; serializable (vitest provide, state file). */
export interface ControlPlaneConnection {
  /** https://127.0.0.1:PORT */
  readonly server: string;
  /** Kubeconfig of the admin (group system:masters). */
  readonly kubeconfigPath: string;
  /** Kubeconfig of RESTRICTED_USER (only system:authenticated; RBAC decides the rest). */
  readonly restrictedKubeconfigPath: string;
  readonly adminToken: string;
  readonly restrictedToken: string;
  readonly restrictedUser: string;
  /** PEM of the CA that signed the serving certificate. */
  readonly caCert: string;
  /** http://127.0.0.1:PORT (etcd's client URL; loopback, no TLS). */
  readonly etcdUrl: string;
  readonly kubectlPath: string;
  readonly dir: string;
}

export interface ControlPlaneState extends ControlPlaneConnection {
  readonly pids: { readonly etcd: number; readonly apiServer: number };
  readonly binaries: ControlPlaneBinaries;
}

export interface KubectlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ControlPlane extends ControlPlaneConnection {
  readonly binaries: ControlPlaneBinaries;
  /** Stops the API server and etcd (process groups, SIGTERM then SIGKILL) and removes the directory. */
  stop(): Promise<void>;
  /** Stops and starts kube-apiserver on the same port and data; resolves when /readyz is ok. */
  restartApiServer(): Promise<void>;
  /** SIGSTOP: connections stay open but nothing is answered (a stalled watch, a hung server). */
  pauseApiServer(): void;
  /** SIGCONT after pauseApiServer(). */
  resumeApiServer(): void;
  /**
   * Compacts etcd at its current revision (physical) and returns that revision. Watches served
   * from etcd (watchCache: false) at an older resourceVersion then end with 410 Gone; with the
   * watch cache on, follow with restartApiServer() so the cache forgets the old history too.
   * Without the cache, a watch from exactly (compacted revision - 1) gets a 500 ERROR event
   * ("etcd event received with PrevKv=nil") instead: clients must relist on any ERROR event.
   */
  compactEtcd(): Promise<number>;
  /**
   * Makes every watch from a resourceVersion older than now end with 410 Gone (Expired):
   * compacts etcd and, when the watch cache is on, restarts the API server so the cache starts
   * over. Returns the compacted revision.
   */
  expireWatches(): Promise<number>;
  /** Runs the built kubectl against this server (admin kubeconfig unless given). */
  kubectl(args: readonly string[], options?: { input?: string; kubeconfig?: string }): Promise<KubectlResult>;
  /** Serializable description for testenv:down and other processes. */
  state(): ControlPlaneState;
}

/** Starts etcd and kube-apiserver and waits until the API server is ready. */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const log = options.log ?? (() => undefined);
  const binaries = options.binaries ?? (await ensureBinaries({ log }));
  const started = Date.now();
  const baseDir = options.baseDir ?? tmpdir();
  removeOrphans(baseDir);
  const dir = mkdtempSync(join(baseDir, 'recontext-cp-'));
  // The owner's pid lets a later start remove this directory if we die without stop() (etcd
  // preallocates ~120 MB). A detached instance is owned by testenv's state file instead.
  if (!options.detached) writeFileSync(join(dir, 'owner.pid'), String(process.pid));
  try {
    const instance = await ControlPlaneInstance.start(binaries, dir, options, log);
    log(`control plane: ready at ${instance.server} in ${formatElapsed(Date.now() - started)} (dir ${dir})`);
    return instance;
  } catch (error: unknown) {
    if (!options.keepDir) rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/** Removes instance directories whose owning process is gone (killed test runs). */
function removeOrphans(baseDir: string): void {
  let entries: string[];
  try {
    entries = readdirSync(baseDir).filter((name) => name.startsWith('recontext-cp-'));
  } catch {
    return;
  }
  for (const name of entries) {
    const dir = join(baseDir, name);
    let owner: number;
    try {
      owner = Number.parseInt(readFileSync(join(dir, 'owner.pid'), 'utf8'), 10);
    } catch {
      continue; // no owner file: detached (testenv) or from an older version; leave it alone
    }
    if (Number.isInteger(owner) && owner > 0 && !isAlive(owner)) rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs kubectl with a kubeconfig; a non-zero exit is a result, not an exception. */
export function runKubectl(kubectl: string, kubeconfig: string, args: readonly string[], input?: string): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      kubectl,
      // Discovery cache beside the kubeconfig, so runs on random ports do not pile up in ~/.kube/cache.
      [`--kubeconfig=${kubeconfig}`, `--cache-dir=${join(dirname(kubeconfig), '.kube-cache')}`, ...args],
      { maxBuffer: 64 * 1024 * 1024, timeout: 120_000 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') reject(error);
        else resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
      },
    );
    child.stdin?.end(input ?? '');
  });
}

/** Stops processes recorded by ControlPlane.state() (from another process, e.g. testenv:down). */
export async function stopFromState(state: ControlPlaneState, options: { keepDir?: boolean } = {}): Promise<void> {
  if (ownsPid(state.pids.apiServer, state.binaries.kubeApiserver)) await terminateGroup(state.pids.apiServer);
  if (ownsPid(state.pids.etcd, state.binaries.etcd)) await terminateGroup(state.pids.etcd);
  if (!options.keepDir) rmSync(state.dir, { recursive: true, force: true });
}

class ControlPlaneInstance implements ControlPlane {
  private apiServer: ManagedProcess | undefined;
  private etcd: ManagedProcess | undefined;
  private paused = false;
  private stopped = false;
  private readonly removeExitHook: () => void;

  private constructor(
    readonly binaries: ControlPlaneBinaries,
    readonly dir: string,
    private readonly options: ControlPlaneOptions,
    private readonly log: (line: string) => void,
    private readonly apiServerPort: number,
    private readonly etcdPort: number,
    readonly adminToken: string,
    readonly restrictedToken: string,
  ) {
    this.removeExitHook = options.detached ? () => undefined : onProcessExit(() => this.killNow());
  }

  caCert = '';
  readonly restrictedUser = RESTRICTED_USER;
  get server(): string {
    return `https://127.0.0.1:${this.apiServerPort}`;
  }
  get etcdUrl(): string {
    return `http://127.0.0.1:${this.etcdPort}`;
  }
  get kubeconfigPath(): string {
    return join(this.dir, 'admin.kubeconfig');
  }
  get restrictedKubeconfigPath(): string {
    return join(this.dir, 'restricted.kubeconfig');
  }
  get kubectlPath(): string {
    return this.binaries.kubectl;
  }

  static async start(
    binaries: ControlPlaneBinaries,
    dir: string,
    options: ControlPlaneOptions,
    log: (line: string) => void,
  ): Promise<ControlPlaneInstance> {
    for (const sub of ['etcd', 'certs', 'logs']) mkdirSync(join(dir, sub), { recursive: true });
    const adminToken = randomBytes(24).toString('hex');
    const restrictedToken = randomBytes(24).toString('hex');
    // CSV: token,user,uid,"groups". Every token user also gets system:authenticated.
    writeFileSync(
      join(dir, 'tokens.csv'),
      `${adminToken},${ADMIN_USER},${ADMIN_USER},"system:masters"\n${restrictedToken},${RESTRICTED_USER},${RESTRICTED_USER}\n`,
      { mode: 0o600 },
    );
    // The API server needs a service-account signing key even though no token controller runs.
    const { privateKey, publicKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    writeFileSync(join(dir, 'certs', 'sa.key'), privateKey, { mode: 0o600 });
    writeFileSync(join(dir, 'certs', 'sa.pub'), publicKey);

    // Random free ports can be taken between probing and binding: retry on an early exit.
    let lastError: unknown;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const [etcdPort, apiServerPort] = [await freePort(), await freePort()];
      const instance = new ControlPlaneInstance(binaries, dir, options, log, apiServerPort, etcdPort, adminToken, restrictedToken);
      try {
        await instance.startEtcd();
        await instance.startApiServer();
        instance.caCert = readFileSync(join(dir, 'certs', 'apiserver.crt'), 'utf8');
        instance.writeKubeconfigs();
        // Proves the kubeconfig material (CA, token) is right, not just that the port answers.
        await instance.checkWithCa();
        return instance;
      } catch (error: unknown) {
        lastError = error;
        await instance.stopProcesses();
        instance.removeExitHook();
        const text = error instanceof Error ? error.message : String(error);
        if (!/exited|address already in use/i.test(text) || attempt === 3) break;
        log(`control plane: start attempt ${attempt} failed (${text.split('\n')[0]}); retrying with new ports`);
        rmSync(join(dir, 'etcd'), { recursive: true, force: true });
        mkdirSync(join(dir, 'etcd'));
      }
    }
    throw lastError;
  }

  private async startEtcd(): Promise<void> {
    const args = [
      `--name=recontext-test`,
      `--data-dir=${join(this.dir, 'etcd')}`,
      `--listen-client-urls=${this.etcdUrl}`,
      `--advertise-client-urls=${this.etcdUrl}`,
      // A peer port is required; port 0 binds an unused one we never talk to (as envtest does).
      '--listen-peer-urls=http://127.0.0.1:0',
      '--initial-advertise-peer-urls=http://127.0.0.1:0',
      '--initial-cluster=recontext-test=http://127.0.0.1:0',
      '--unsafe-no-fsync',
      '--log-level=warn',
    ];
    this.etcd = ManagedProcess.spawn('etcd', this.binaries.etcd, args, this.dir, this.options.detached === true);
    await waitFor(
      'etcd /health',
      async () => {
        const response = await httpGet(`${this.etcdUrl}/health`);
        return response.status === 200 && response.body.includes('"health":"true"');
      },
      this.etcd,
      30_000,
    );
  }

  private apiServerArgs(): string[] {
    const certs = join(this.dir, 'certs');
    return [
      `--etcd-servers=${this.etcdUrl}`,
      `--cert-dir=${certs}`,
      `--secure-port=${this.apiServerPort}`,
      '--bind-address=127.0.0.1',
      // Without it the server looks for a default route to pick an address, and fails without one.
      '--advertise-address=127.0.0.1',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--authorization-mode=RBAC',
      `--token-auth-file=${join(this.dir, 'tokens.csv')}`,
      `--service-account-issuer=${this.server}`,
      `--service-account-key-file=${join(certs, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(certs, 'sa.key')}`,
      '--disable-admission-plugins=ServiceAccount',
      '--allow-privileged=true',
      // The `kubernetes` Endpoints would point at 127.0.0.1, which validation rejects; nothing needs them.
      '--endpoint-reconciler-type=none',
      ...(this.options.watchCache === false ? ['--watch-cache=false'] : []),
      ...(this.options.extraApiServerFlags ?? []),
    ];
  }

  private async startApiServer(): Promise<void> {
    this.apiServer = ManagedProcess.spawn(
      'kube-apiserver',
      this.binaries.kubeApiserver,
      this.apiServerArgs(),
      this.dir,
      this.options.detached === true,
    );
    this.paused = false;
    await waitFor(
      'kube-apiserver /readyz',
      async () => (await this.get('/readyz', false)).status === 200,
      this.apiServer,
      this.options.readyTimeoutMs ?? 120_000,
    );
  }

  private async checkWithCa(): Promise<void> {
    const response = await this.get('/readyz', true);
    if (response.status !== 200) throw new Error(`kube-apiserver /readyz with CA and admin token: ${response.status} ${response.body}`);
  }

  private get(path: string, verify: boolean): Promise<HttpResponse> {
    return httpGet(`${this.server}${path}`, {
      headers: { authorization: `Bearer ${this.adminToken}` },
      // Readiness polling starts before the serving certificate exists on disk; loopback only.
      ...(verify ? { ca: this.caCert } : { rejectUnauthorized: false }),
    });
  }

  private writeKubeconfigs(): void {
    const write = (path: string, user: string, token: string): void => {
      const config = {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          { name: 'recontext-test', cluster: { server: this.server, 'certificate-authority-data': Buffer.from(this.caCert).toString('base64') } },
        ],
        users: [{ name: user, user: { token } }],
        contexts: [{ name: user, context: { cluster: 'recontext-test', user, namespace: 'default' } }],
        'current-context': user,
      };
      writeFileSync(path, stringify(config), { mode: 0o600 });
    };
    write(this.kubeconfigPath, 'admin', this.adminToken);
    write(this.restrictedKubeconfigPath, 'restricted', this.restrictedToken);
  }

  async restartApiServer(): Promise<void> {
    this.assertRunning();
    const started = Date.now();
    await this.apiServer?.terminate();
    await this.startApiServer();
    this.log(`control plane: kube-apiserver restarted in ${formatElapsed(Date.now() - started)}`);
  }

  pauseApiServer(): void {
    this.assertRunning();
    this.apiServer?.signal('SIGSTOP');
    this.paused = true;
  }

  resumeApiServer(): void {
    this.assertRunning();
    this.apiServer?.signal('SIGCONT');
    this.paused = false;
  }

  async compactEtcd(): Promise<number> {
    this.assertRunning();
    // etcd's JSON gateway: any range response carries the current revision in its header.
    const range = await httpPost(`${this.etcdUrl}/v3/kv/range`, { key: Buffer.from('/').toString('base64'), limit: 1 });
    const revision = Number((JSON.parse(range) as { header?: { revision?: string } }).header?.revision);
    if (!Number.isSafeInteger(revision) || revision <= 0) throw new Error(`etcd range gave no revision: ${range}`);
    await httpPost(`${this.etcdUrl}/v3/kv/compaction`, { revision: String(revision), physical: true });
    return revision;
  }

  async expireWatches(): Promise<number> {
    const revision = await this.compactEtcd();
    if (this.options.watchCache !== false) await this.restartApiServer();
    return revision;
  }

  kubectl(args: readonly string[], options: { input?: string; kubeconfig?: string } = {}): Promise<KubectlResult> {
    return runKubectl(this.kubectlPath, options.kubeconfig ?? this.kubeconfigPath, args, options.input);
  }

  state(): ControlPlaneState {
    return {
      ...this.connection(),
      pids: { etcd: this.etcd?.pid ?? 0, apiServer: this.apiServer?.pid ?? 0 },
      binaries: this.binaries,
    };
  }

  connection(): ControlPlaneConnection {
    return {
      server: this.server,
      kubeconfigPath: this.kubeconfigPath,
      restrictedKubeconfigPath: this.restrictedKubeconfigPath,
      adminToken: this.adminToken,
      restrictedToken: this.restrictedToken,
      restrictedUser: this.restrictedUser,
      caCert: this.caCert,
      etcdUrl: this.etcdUrl,
      kubectlPath: this.kubectlPath,
      dir: this.dir,
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.stopProcesses();
    this.removeExitHook();
    if (!this.options.keepDir) rmSync(this.dir, { recursive: true, force: true });
  }

  private async stopProcesses(): Promise<void> {
    if (this.paused) this.apiServer?.signal('SIGCONT');
    await this.apiServer?.terminate();
    await this.etcd?.terminate();
  }

  /** Synchronous last resort when this Node process exits without stop(). */
  private killNow(): void {
    for (const process of [this.apiServer, this.etcd]) process?.signal('SIGKILL');
    if (!this.options.keepDir) rmSync(this.dir, { recursive: true, force: true });
  }

  private assertRunning(): void {
    if (this.stopped) throw new Error('control plane is stopped');
  }
}

/** True when a kubeconfig file left by testenv:up still exists (the state may be stale). */
export function stateLooksAlive(state: ControlPlaneState): boolean {
  return existsSync(state.kubeconfigPath) && ownsPid(state.pids.apiServer, state.binaries.kubeApiserver) && ownsPid(state.pids.etcd, state.binaries.etcd);
}
