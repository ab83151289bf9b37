// The loop closed on real parts: a MigrationPolicy moves a VM, recontext re-renders its context
// for the new place. Standalone mode on the libvirt test bed (two real libvirtds, a real QEMU
// guest): the guest's load is reported to the operator (POST /v1/reports, metric.reported), a
// Threshold policy asks to move it from the zone-a array to zone-b, the libvirt driver live-
// migrates it, and the guest then reads zone-b's cache address from its swapped CD-ROM.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/runtime/log.js';
import { OperatorMetrics } from '../../src/runtime/metrics.js';
import { MetricSources, ReportedSource } from '../../src/metric-sources/index.js';
import { StandaloneOperator } from '../../src/standalone/operator.js';
import { LibvirtDriver } from '../../src/drivers/libvirt/driver.js';
import { readHostsFile, resolveHosts } from '../../src/standalone/hosts.js';
import { guestReads } from '../testbed/agent.js';
import { testbedSkipReason, useTestbed, type Testbed } from '../testbed/shared.js';
import { writeSite, ZONE_A, ZONE_B } from '../testbed/site.js';
import { until } from './scenario.js';

const DOMAIN = `policy-${process.pid}`;
const ZONE = 'topology.kubernetes.io/zone';

describe.skipIf(testbedSkipReason())('MigrationPolicy → live migration → recontextualization (standalone, real QEMU)', () => {
  let tb: Testbed;
  let operator: StandaloneOperator | undefined;
  const site = mkdtempSync(join(tmpdir(), 'policy-site-'));
  const state = mkdtempSync(join(tmpdir(), 'policy-state-'));
  const report = (value: number) =>
    fetch(`${operator!.metricsUrl}/v1/reports`, { method: 'POST', body: JSON.stringify({ namespace: 'default', name: DOMAIN, key: 'load', value }) }).then(async (r) => {
      if (r.status !== 200) throw new Error(`report refused: ${r.status} ${await r.text()}`);
    });

  beforeAll(async () => {
    tb = await useTestbed();
    const hostsFile = writeSite(site, { domain: DOMAIN, hosts: tb.hosts });
    writeFileSync(
      join(site, 'policy.yaml'),
      `apiVersion: recontext.dev/v1alpha1
kind: MigrationPolicy
metadata:
  name: follow-the-load
spec:
  type: Threshold
  vmSelector: {matchLabels: {app: gluster-client}}
  metric: {reported: {key: load}}
  sampleInterval: 1s
  high: 0.8
  highFor: 3
  arrays:
    - {name: zone-a, nodeSelector: {${ZONE}: ${ZONE_A[ZONE]}}, cost: 1}
    - {name: zone-b, nodeSelector: {${ZONE}: ${ZONE_B[ZONE]}}, cost: 2}
  cooldown: 10m
`,
    );
    const xml = join(mkdtempSync(join(tmpdir(), 'policy-')), 'domain.xml');
    writeFileSync(xml, tb.domainXml({ name: DOMAIN, cdroms: 6 }));
    await tb.virsh('host-a', ['create', xml]);
    await tb.waitForConsole(DOMAIN, /CTX ALIVE 1/, 90_000);
    const reported = new ReportedSource();
    operator = new StandaloneOperator({
      directory: site,
      stateDirectory: state,
      driver: new LibvirtDriver(resolveHosts(readHostsFile(hostsFile), [], () => {}), { log: () => {} }),
      logger: createLogger({ level: 'warn', write: () => {} }),
      metrics: new OperatorMetrics({ defaultMetrics: false }),
      exclude: [hostsFile],
      metricsAddress: '127.0.0.1:0',
      policyMetrics: { source: new MetricSources({ reported }), reported },
    });
  }, 180_000);

  afterAll(async () => {
    await operator?.stop();
    for (const host of ['host-a', 'host-b'] as const) await tb?.virsh(host, ['destroy', DOMAIN]).catch(() => undefined);
    rmSync(site, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  });

  it('high load reported for 3 samples: the policy live-migrates the VM to zone-b, its context follows', async () => {
    const from = tb.consoleOffset(DOMAIN);
    await operator!.start();
    const policyKey = 'default/follow-the-load';
    const vmKey = `default/${DOMAIN}`;
    await until('context on host-a', async () => (operator!.store.vmContexts.get(vmKey)?.status?.node === 'host-a' ? true : undefined), 60_000);
    await guestReads(tb, DOMAIN, 'etc/glusterfs/cache.conf', /cache-a\.zone-a/, from);

    // Normal load: the policy samples and stays.
    await report(0.3);
    await until('the policy active', async () => (operator!.store.policies.get(policyKey)?.status?.conditions?.some((c) => c.reason === 'Active') ? true : undefined), 20_000);
    // The load goes up and stays up (the guest's agent keeps reporting).
    const high = setInterval(() => void report(0.93).catch(() => undefined), 500);
    try {
      const decision = await until('a migration decided and done', async () => operator!.store.policies.get(policyKey)?.status?.decisions?.find((d) => d.result === 'Succeeded'), 60_000);
      expect(decision).toMatchObject({ vm: DOMAIN, from: 'zone-a', to: 'zone-b', value: 0.93 });
      const moved = await until('recontextualized on host-b', async () => {
        const v = operator!.store.vmContexts.get(vmKey);
        return v?.status?.node === 'host-b' && v.status.lastRecontext?.trigger === 'Migration' && v.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? v : undefined;
      }, 60_000);
      expect(moved.status?.layers?.length).toBe(4);
      await guestReads(tb, DOMAIN, 'etc/glusterfs/cache.conf', /cache-b\.zone-b/, from);
      // Still high, but the cooldown holds it on zone-b: exactly one migration.
      await until('a held decision', async () => (operator!.store.policies.get(policyKey)?.status?.decisions?.some((d) => d.result === 'Skipped') ? true : undefined), 20_000);
      expect(operator!.store.policies.get(policyKey)?.status?.decisions?.filter((d) => d.result === 'Succeeded')).toHaveLength(1);
    } finally {
      clearInterval(high);
    }
  }, 240_000);
});
