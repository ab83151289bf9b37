// `npm run testenv:up|down` (and `build`, `status`): a long-lived test control plane for working
// by hand (kubectl, the operator) with the same code the tests use.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ControlPlaneUnavailable,
  cacheRoot,
  ensureBinaries,
  startControlPlane,
  stateLooksAlive,
  stopFromState,
  type ControlPlaneState,
} from './index.js';

const log = (line: string): void => console.error(line);

function stateDir(): string {
  return join(cacheRoot(), 'testenv');
}

function statePath(): string {
  return join(stateDir(), 'state.json');
}

function readState(): ControlPlaneState | undefined {
  try {
    return JSON.parse(readFileSync(statePath(), 'utf8')) as ControlPlaneState;
  } catch {
    return undefined;
  }
}

async function up(): Promise<void> {
  const existing = readState();
  if (existing && stateLooksAlive(existing)) {
    log(`testenv: already up at ${existing.server} (npm run testenv:down to stop)`);
    console.log(existing.kubeconfigPath);
    return;
  }
  if (existing) {
    // Half-dead leftovers (one process crashed, machine rebooted): clear them first.
    await stopFromState(existing);
    rmSync(statePath(), { force: true });
  }
  const binaries = await ensureBinaries({ log });
  mkdirSync(stateDir(), { recursive: true });
  const plane = await startControlPlane({ binaries, baseDir: stateDir(), detached: true, log });
  const state = plane.state();
  writeFileSync(statePath(), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  log(`testenv: kube-apiserver ${binaries.versions.kubernetes} at ${state.server}, etcd ${binaries.versions.etcd} at ${state.etcdUrl}`);
  log(`testenv: restricted user ${state.restrictedUser}: ${state.restrictedKubeconfigPath}`);
  log(`testenv: kubectl: ${state.kubectlPath}`);
  log(`testenv: logs in ${join(state.dir, 'logs')}; stop with npm run testenv:down`);
  // Last line, alone on stdout: scripts do KUBECONFIG=$(npm run -s testenv:up | tail -1).
  console.log(state.kubeconfigPath);
}

async function down(): Promise<void> {
  const state = readState();
  if (!state) {
    log('testenv: not running (no state file)');
    return;
  }
  await stopFromState(state);
  rmSync(statePath(), { force: true });
  log(`testenv: stopped (pids ${state.pids.apiServer}, ${state.pids.etcd}) and removed ${state.dir}`);
}

async function status(): Promise<void> {
  const state = readState();
  if (state && stateLooksAlive(state)) {
    log(`testenv: up at ${state.server}`);
    console.log(state.kubeconfigPath);
  } else {
    log(state ? 'testenv: state file present but processes are gone (run testenv:down)' : 'testenv: not running');
    process.exitCode = 1;
  }
}

async function main(command: string | undefined): Promise<void> {
  switch (command) {
    case 'up':
      return up();
    case 'down':
      return down();
    case 'status':
      return status();
    case 'build': {
      const binaries = await ensureBinaries({ log });
      log(`testenv: binaries in ${binaries.dir}`);
      console.log(binaries.dir);
      return;
    }
    default:
      log('usage: tsx test/controlplane/cli.ts up|down|status|build');
      process.exitCode = 2;
  }
}

main(process.argv[2]).catch((error: unknown) => {
  log(`testenv: ${error instanceof ControlPlaneUnavailable ? 'unavailable: ' : ''}${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
