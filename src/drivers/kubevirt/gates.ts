// Whether KubeVirt's declarative volume hotplug is on, read from the KubeVirt resource: the only
// path that swaps a CD-ROM's medium in a running VM when its spec changes. Without it KubeVirt
// holds every volume change until the VM restarts and says nothing (no RestartRequired), and
// refuses empty CD-ROM drives outright. As KubeVirt decides it (pkg/virt-config/featuregate
// IsEnabled, pkg/virt-controller/watch/vm handleDeclarativeVolumeHotplug):
// - a gate is on when listed in developerConfiguration.featureGates, else off when listed in
//   disabledFeatureGates, else on only if it is Beta in that version;
// - DeclarativeHotplugVolumes is Alpha in v1.6–v1.8 and Beta from v1.9; it does not exist before v1.6;
// - the VM controller skips declarative hotplug whenever the older HotplugVolumes gate is on.

/** The parts of a KubeVirt resource (kubevirt.io/v1 KubeVirt) the decision reads. */
export interface KubeVirtResource {
  readonly metadata?: { readonly name?: string; readonly namespace?: string };
  readonly spec?: { readonly configuration?: { readonly developerConfiguration?: { readonly featureGates?: readonly string[]; readonly disabledFeatureGates?: readonly string[] } } };
  readonly status?: { readonly phase?: string; readonly observedKubeVirtVersion?: string; readonly operatorVersion?: string };
}

export const DECLARATIVE_HOTPLUG = 'DeclarativeHotplugVolumes';
export const HOTPLUG_VOLUMES = 'HotplugVolumes';

export type HotplugSupport = { readonly on: true; readonly version?: string } | { readonly on: false; readonly message: string };

/** "v1.9.0-beta.0.1264+abc" → [1, 9]; undefined when unreadable. */
export function minorVersion(version: string | undefined): readonly [number, number] | undefined {
  const match = /^v?(\d+)\.(\d+)/.exec(version ?? '');
  return match ? [Number(match[1]), Number(match[2])] : undefined;
}

/** Pure: whether the KubeVirt resource turns declarative hotplug on, and if not, what to change. */
export function declarativeHotplug(kubevirt: KubeVirtResource): HotplugSupport {
  // The deployed version is the image tag, which need not be a version (a commit, "devel"); the
  // operator's own build version then says which release line it is.
  const candidates = [kubevirt.status?.observedKubeVirtVersion, kubevirt.status?.operatorVersion];
  const version = candidates.find((v) => minorVersion(v) !== undefined) ?? candidates.find(Boolean);
  const gates = kubevirt.spec?.configuration?.developerConfiguration ?? {};
  const enabled = (gate: string, betaFrom: readonly [number, number] | undefined): boolean => {
    if (gates.featureGates?.includes(gate)) return true;
    if (gates.disabledFeatureGates?.includes(gate)) return false;
    const at = minorVersion(version);
    // An unknown release line: the gate's default cannot be known, and the VMI's volume status
    // will show what KubeVirt does; assume the newest behaviour.
    if (at === undefined) return betaFrom !== undefined;
    return betaFrom !== undefined && (at[0] > betaFrom[0] || (at[0] === betaFrom[0] && at[1] >= betaFrom[1]));
  };
  const where = `KubeVirt ${kubevirt.metadata?.namespace ?? '?'}/${kubevirt.metadata?.name ?? '?'}${version ? ` (${version})` : ''}`;
  const at = minorVersion(version);
  if (at && (at[0] < 1 || (at[0] === 1 && at[1] < 6))) {
    return { on: false, message: `${where} has no declarative volume hotplug (it came in v1.6): upgrade KubeVirt to v1.6 or later` };
  }
  if (!enabled(DECLARATIVE_HOTPLUG, [1, 9])) {
    const fix = gates.disabledFeatureGates?.includes(DECLARATIVE_HOTPLUG) ? `remove it from spec.configuration.developerConfiguration.disabledFeatureGates` : `add it to spec.configuration.developerConfiguration.featureGates (Alpha before v1.9)`;
    return { on: false, message: `${where}: the ${DECLARATIVE_HOTPLUG} feature gate is off, so context CD-ROMs cannot be filled or swapped in running VMs; ${fix}` };
  }
  if (enabled(HOTPLUG_VOLUMES, undefined)) {
    return { on: false, message: `${where}: the ${HOTPLUG_VOLUMES} feature gate is on, which turns ${DECLARATIVE_HOTPLUG} off; remove ${HOTPLUG_VOLUMES} from spec.configuration.developerConfiguration.featureGates` };
  }
  return version ? { on: true, version } : { on: true };
}
