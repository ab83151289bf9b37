import { describe, expect, it } from 'vitest';
import { declarativeHotplug, minorVersion, type KubeVirtResource } from './gates.js';

const kubevirt = (version: string, featureGates?: string[], disabledFeatureGates?: string[]): KubeVirtResource => ({
  metadata: { name: 'kubevirt', namespace: 'kubevirt' },
  spec: { configuration: { developerConfiguration: { ...(featureGates ? { featureGates } : {}), ...(disabledFeatureGates ? { disabledFeatureGates } : {}) } } },
  status: { observedKubeVirtVersion: version },
});

describe('declarative volume hotplug, as KubeVirt decides it', () => {
  it('reads versions as KubeVirt writes them', () => {
    expect(minorVersion('v1.9.0-beta.0.1264+d923fdb815cd20-dirty')).toEqual([1, 9]);
    expect(minorVersion('v1.10.2')).toEqual([1, 10]);
    expect(minorVersion(undefined)).toBeUndefined();
  });

  it('is on by default from v1.9 (Beta), unless disabled', () => {
    expect(declarativeHotplug(kubevirt('v1.9.0')).on).toBe(true);
    expect(declarativeHotplug(kubevirt('v1.10.1')).on).toBe(true);
    const disabled = declarativeHotplug(kubevirt('v1.9.0', [], ['DeclarativeHotplugVolumes']));
    expect(disabled).toEqual({ on: false, message: expect.stringMatching(/remove it from .*disabledFeatureGates/) });
  });

  it('needs the gate in v1.6–v1.8 (Alpha), and says where to add it', () => {
    const off = declarativeHotplug(kubevirt('v1.6.3'));
    expect(off).toEqual({ on: false, message: expect.stringMatching(/^KubeVirt kubevirt\/kubevirt \(v1\.6\.3\): the DeclarativeHotplugVolumes feature gate is off.*add it to spec\.configuration\.developerConfiguration\.featureGates/) });
    expect(declarativeHotplug(kubevirt('v1.8.1', ['DeclarativeHotplugVolumes'])).on).toBe(true);
    // An explicit enable wins over a disable, as in KubeVirt.
    expect(declarativeHotplug(kubevirt('v1.7.0', ['DeclarativeHotplugVolumes'], ['DeclarativeHotplugVolumes'])).on).toBe(true);
  });

  it('is off whenever the older HotplugVolumes gate is on, in every version', () => {
    for (const version of ['v1.7.0', 'v1.9.0']) {
      const both = declarativeHotplug(kubevirt(version, ['DeclarativeHotplugVolumes', 'HotplugVolumes']));
      expect(both).toEqual({ on: false, message: expect.stringMatching(/HotplugVolumes feature gate is on, which turns DeclarativeHotplugVolumes off/) });
    }
  });

  it('reads the release line from the operator when the deployed version is an image tag', () => {
    const tagged = (operatorVersion?: string): KubeVirtResource => ({ ...kubevirt('d923fdb815cd'), status: { observedKubeVirtVersion: 'd923fdb815cd', ...(operatorVersion ? { operatorVersion } : {}) } });
    expect(declarativeHotplug(tagged('v1.8.0-12+abc'))).toEqual({ on: false, message: expect.stringMatching(/\(v1\.8\.0-12\+abc\).*Alpha before v1\.9/) });
    expect(declarativeHotplug(tagged('v1.9.0-beta.0.1264+d923fdb815cd20'))).toEqual({ on: true, version: 'v1.9.0-beta.0.1264+d923fdb815cd20' });
    // Nothing says which line: assumed on (the VMI's volume status shows what KubeVirt does).
    expect(declarativeHotplug(tagged()).on).toBe(true);
  });

  it('does not exist before v1.6', () => {
    expect(declarativeHotplug(kubevirt('v1.5.2', ['DeclarativeHotplugVolumes']))).toEqual({ on: false, message: expect.stringMatching(/upgrade KubeVirt to v1\.6/) });
  });
});
