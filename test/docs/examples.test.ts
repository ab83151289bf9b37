// The example KubeVirt VirtualMachine agrees with the example VMContext that targets it: one empty
// SATA CD-ROM drive ctx-<layer> per layer the VMContext receives (KubeVirt hot-plugs volumes only
// into drives the VM started with), no volume of those names (the operator adds them), and the
// shape test/e2e/kubevirt/delivery.e2e.ts boots on real KubeVirt.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import type { V1VirtualMachine } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import { loadManifests } from '../../src/manifests/load.js';
import { buildWorkspace } from '../../src/manifests/workspace.js';
import { selectLayers } from '../../src/reconcile/layers.js';

const EXAMPLES = join(import.meta.dirname, '..', '..', 'examples');

describe('examples/kubevirt', () => {
  const vm = parse(readFileSync(join(EXAMPLES, 'kubevirt', 'virtualmachine-gluster-client.yaml'), 'utf8')) as V1VirtualMachine;
  const workspace = buildWorkspace(loadManifests([join(EXAMPLES, 'gluster')]).documents);
  const vmContext = workspace.vmContexts.find((c) => c.spec.target.kubevirt?.name === vm.metadata?.name);

  it('is the VirtualMachine the example VMContext targets', () => {
    expect(vm.apiVersion).toBe('kubevirt.io/v1');
    expect(vm.kind).toBe('VirtualMachine');
    expect(vmContext, `no VMContext in examples/gluster targets ${vm.metadata?.name}`).toBeDefined();
  });

  it('has one empty SATA CD-ROM drive ctx-<layer> per layer of that VMContext, and no volume for them', () => {
    const layers = selectLayers(vmContext!, workspace.layers).layers.map((l) => `ctx-${l.metadata.name}`);
    const disks = vm.spec.template.spec?.domain.devices.disks ?? [];
    const drives = disks.filter((d) => d.name.startsWith('ctx-'));
    expect(drives.map((d) => d.name).sort()).toEqual([...layers].sort());
    for (const drive of drives) expect(drive).toEqual({ name: drive.name, cdrom: { bus: 'sata' } });
    const volumes = vm.spec.template.spec?.volumes ?? [];
    expect(volumes.filter((v) => v.name.startsWith('ctx-'))).toEqual([]);
    // Every other disk has its volume, as KubeVirt requires.
    for (const disk of disks.filter((d) => !d.name.startsWith('ctx-'))) expect(volumes.map((v) => v.name)).toContain(disk.name);
  });
});
