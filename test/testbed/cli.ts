// `npm run -s testbed:up` / `testbed:down` (and `status`, `build [base|fat]`): a long-lived test bed for
// working by hand (virsh, the driver, the demo) with the same code the tests use. The last line
// of `up` on stdout is the state as JSON (hosts with socket and uri, guest kernel/initrd).
// RECONTEXT_TESTBED_ID picks the instance (default "cli").
import { ensureGuest, ensurePackages, probeAccelerator, readState, startTestbed, stateAlive, stopState, testbedRoot, TestbedUnavailable } from './index.js';
import { join } from 'node:path';

const log = (line: string): void => console.error(line);
const id = process.env['RECONTEXT_TESTBED_ID'] ?? 'cli';
const dir = join(testbedRoot(), id);

function summary(state: NonNullable<ReturnType<typeof readState>>): string {
  return JSON.stringify({
    id: state.id,
    dir: state.dir,
    accel: state.accelerator.accel,
    hosts: state.hosts.map((h) => ({ name: h.name, socket: h.socket, uri: h.uri })),
    guest: { kernel: state.guest.kernel, initrd: state.guest.initrd, cmdline: state.guest.cmdline },
    consoleLogs: join(state.dir, 'domains', '<domain>', 'console.log'),
  });
}

async function main(command: string | undefined): Promise<void> {
  switch (command) {
    case 'up': {
      const existing = readState(dir);
      if (existing && stateAlive(existing)) {
        log(`testbed: ${id} already up (npm run -s testbed:down to stop)`);
        console.log(summary(existing));
        return;
      }
      const testbed = await startTestbed({ id, detached: true, log });
      for (const host of testbed.hosts) log(`testbed: ${host.name}: virsh -c '${host.uri}'`);
      log(`testbed: console logs: ${join(testbed.dir, 'domains', '<domain>', 'console.log')}; stop with npm run -s testbed:down`);
      console.log(summary(testbed.state()));
      return;
    }
    case 'down': {
      const state = readState(dir);
      if (!state) {
        log(`testbed: ${id} not running (no ${join(dir, 'state.json')})`);
        return;
      }
      await stopState(state, log);
      log(`testbed: ${id} stopped`);
      return;
    }
    case 'status': {
      const state = readState(dir);
      if (state && stateAlive(state)) console.log(summary(state));
      else {
        log(state ? `testbed: ${id}: state present but hosts are gone (run testbed:down)` : `testbed: ${id} not running`);
        process.exitCode = 1;
      }
      return;
    }
    case 'build': {
      const variant = process.argv[3] ?? 'base';
      if (variant !== 'base' && variant !== 'fat') throw new Error(`unknown guest variant ${variant} (base or fat)`);
      await ensurePackages(log);
      const guest = await ensureGuest({ variant, log });
      const accel = await probeAccelerator(guest, log);
      console.log(JSON.stringify({ guest, accel }));
      return;
    }
    default:
      log('usage: tsx test/testbed/cli.ts up|down|status|build [base|fat]');
      process.exitCode = 2;
  }
}

main(process.argv[2]).catch((error: unknown) => {
  log(`testbed: ${error instanceof TestbedUnavailable ? 'unavailable: ' : ''}${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
