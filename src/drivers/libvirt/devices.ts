// Which CD-ROM drive of a libvirt domain carries which layer, and what to change so that it
// carries the desired images: pure functions over the live domain XML (KubeVirt's syncDisks,
// STYLE.md: read observed, diff against desired, apply in a fixed order).
//
// The layer → drive assignment is recorded in the domain's own <metadata>, so it survives an
// operator restart and travels with the domain through a live migration. Drives recontext did
// not assign and that hold a medium (a cloud-init ISO, say) are never touched. SATA drives cannot
// be hot-plugged: they must exist when the domain starts. When there are fewer empty drives than
// layers, recontext hot-plugs virtio-scsi CD-ROMs on the domain's virtio-scsi controller and
// unplugs them when their layer goes.
//
// Facts from libvirt 9.0 + QEMU 7.2 (test bed):
// - A hot-plugged CD-ROM cannot take a new medium without force: libvirt does not track the tray
//   of a hot-plugged disk, skips the eject request and fails at once ("Tray of device … is not
//   open"). So a layer on a hot-plugged drive changes by make-before-break: a new drive with the
//   new image, then the old one unplugged. Drives defined at boot (SATA or SCSI) swap in place.
// - Without a virtio-scsi controller libvirt tries to add one itself (model lsilogic, which guests
//   may lack a driver for), and a running q35 domain has no PCI slot for it: no hot-plug then.
import { XMLParser } from 'fast-xml-parser';
import { VMConfigurationError } from '../driver.js';

export const METADATA_NAMESPACE = 'https://recontext.dev/libvirt/v1alpha1';
export const METADATA_PREFIX = 'recontext';

export interface ObservedCdrom {
  /** Target device name in the domain (sda, sdb …). */
  readonly target: string;
  readonly bus: string;
  /** Image file, or undefined for an empty drive (tray open or no medium). */
  readonly source?: string;
}

/** Where CD-ROMs can be hot-plugged: the domain's virtio-scsi controller and what is taken. */
export interface ScsiRoom {
  readonly controller: number;
  /** Target names of all the domain's disks: a new drive needs another one. */
  readonly usedTargets: readonly string[];
  /** Units taken on the controller's bus 0, target 0 (where recontext plugs drives). */
  readonly usedUnits: readonly number[];
}

export interface Assignment {
  readonly layer: string;
  readonly target: string;
  readonly digest: string;
  /** recontext hot-plugged the drive: it is unplugged when released, not emptied. */
  readonly hotplugged?: boolean;
}

export interface WantedLayer {
  readonly name: string;
  readonly digest: string;
  /** Path of the image file the drive should hold. */
  readonly image: string;
}

export type DeviceAction =
  /** Put `source` into the drive, releasing what it holds (the guest agent unmounts on request). */
  | { readonly kind: 'change-media'; readonly layer: string; readonly target: string; readonly bus: string; readonly source: string }
  /** Empty the drive of a layer the VM no longer has. */
  | { readonly kind: 'eject'; readonly layer: string; readonly target: string; readonly bus: string }
  /** Hot-plug a new SCSI CD-ROM holding `source` at `unit` of the virtio-scsi `controller`. */
  | { readonly kind: 'attach'; readonly layer: string; readonly target: string; readonly bus: 'scsi'; readonly source: string; readonly controller: number; readonly unit: number }
  /** Unplug a drive recontext hot-plugged (its layer is gone, or has a new drive). */
  | { readonly kind: 'detach'; readonly layer: string; readonly target: string; readonly bus: string };

export interface DevicePlan {
  /**
   * In the order to apply: media changes and attaches (the new images in place: isMaking), then
   * ejects and detaches (the old ones released); each group by target name.
   */
  readonly actions: readonly DeviceAction[];
  /**
   * What to record before acting: every drive this plan touches is claimed first, so a crash
   * half-way leaves no medium or hot-plugged drive of ours that the record does not name.
   */
  readonly intent: readonly Assignment[];
  /** The assignment to record once the actions succeeded. */
  readonly assignments: readonly Assignment[];
}

/** The domain has fewer free drives than it has layers, and no virtio-scsi controller to add more. */
export class NoFreeDriveError extends VMConfigurationError {
  override readonly name = 'NoFreeDriveError';
  constructor(readonly missing: number) {
    super(
      'NoFreeDrive',
      `the domain needs ${missing} more empty CD-ROM drive${missing === 1 ? '' : 's'} (one per layer) and has no virtio-scsi controller to hot-plug ${missing === 1 ? 'it' : 'them'} on: ` +
        `add <controller type='scsi' model='virtio-scsi'/> (or empty SATA CD-ROM drives) to the domain XML and restart it; ` +
        `libvirt cannot add the controller to a running q35 domain, and SATA drives cannot be hot-plugged`,
    );
  }
}

const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', removeNSPrefix: false, isArray: (name) => ['disk', 'controller', 'hostdev', 'layer'].includes(name) || name.endsWith(':layer') });

type XmlNode = Record<string, unknown>;
type DevicesNode = { disk?: XmlNode[]; controller?: XmlNode[]; hostdev?: XmlNode[] };

function devicesOf(domainXml: string): DevicesNode {
  return (parser.parse(domainXml) as { domain?: { devices?: DevicesNode } }).domain?.devices ?? {};
}

/** The CD-ROM drives of a domain, from `virDomainGetXMLDesc`. */
export function cdromsOf(domainXml: string): ObservedCdrom[] {
  return (devicesOf(domainXml).disk ?? [])
    .filter((disk) => disk.device === 'cdrom')
    .map((disk) => {
      const target = disk.target as XmlNode | undefined;
      const source = (disk.source as XmlNode | undefined)?.file;
      return { target: String(target?.dev ?? ''), bus: String(target?.bus ?? ''), ...(typeof source === 'string' && source ? { source } : {}) };
    })
    .filter((cdrom) => cdrom.target !== '');
}

/** Where the domain can get hot-plugged CD-ROMs: its first virtio-scsi controller, if any. */
export function scsiRoomOf(domainXml: string): ScsiRoom | undefined {
  const devices = devicesOf(domainXml);
  const controller = (devices.controller ?? [])
    .filter((c) => c.type === 'scsi' && c.model === 'virtio-scsi')
    .map((c) => Number(c.index ?? 0))
    .sort((a, b) => a - b)[0];
  if (controller === undefined) return undefined;
  const disks = devices.disk ?? [];
  const usedUnits = [...disks, ...(devices.hostdev ?? [])]
    .map((device) => device.address as XmlNode | undefined)
    .filter((a): a is XmlNode => a?.type === 'drive' && Number(a.controller ?? 0) === controller && Number(a.bus ?? 0) === 0 && Number(a.target ?? 0) === 0)
    .map((a) => Number(a.unit ?? 0));
  const usedTargets = disks.map((disk) => String((disk.target as XmlNode | undefined)?.dev ?? '')).filter((t) => t !== '');
  return { controller, usedTargets, usedUnits };
}

/** The assignment recorded in the domain's metadata (none when never recorded). */
export function assignmentsOf(domainXml: string): Assignment[] {
  const doc = parser.parse(domainXml) as { domain?: { metadata?: XmlNode } };
  const metadata = doc.domain?.metadata ?? {};
  const root = Object.entries(metadata).find(([key, value]) => key.endsWith('layers') && typeof value === 'object' && (value as XmlNode)[`xmlns:${key.split(':')[0]}`] === METADATA_NAMESPACE)?.[1] as XmlNode | undefined;
  const layers = (Object.entries(root ?? {}).find(([key]) => key === 'layer' || key.endsWith(':layer'))?.[1] ?? []) as XmlNode[];
  // Records written before hot-plug support have no `hotplugged`: those drives existed at boot.
  return layers.map((l) => ({ layer: String(l.name), target: String(l.target), digest: String(l.digest), ...(l.hotplugged === 'true' ? { hotplugged: true } : {}) }));
}

/**
 * The metadata element recording `assignments`, for virDomainSetMetadata: unprefixed and without
 * a namespace declaration — libvirt puts it into METADATA_NAMESPACE under METADATA_PREFIX itself.
 */
export function assignmentsXml(assignments: readonly Assignment[]): string {
  const rows = [...assignments]
    .sort(byTarget)
    .map((a) => `<layer name="${escapeXml(a.layer)}" target="${escapeXml(a.target)}" digest="${escapeXml(a.digest)}"${a.hotplugged ? ' hotplugged="true"' : ''}/>`);
  return `<layers>${rows.join('')}</layers>`;
}

/**
 * The device XML of a CD-ROM: a media change for virDomainUpdateDeviceFlags (no source: eject),
 * a detach (target only counts), or with `address` a hot-plug. The address is explicit because
 * libvirt otherwise derives it from the target name (sdh → controller 1) and wants a controller
 * the running domain may not have.
 */
export function cdromXml(target: string, bus: string, source?: string, address?: { controller: number; unit: number }): string {
  const medium = source ? `<source file="${escapeXml(source)}"/>` : '';
  const at = address ? `<address type="drive" controller="${address.controller}" bus="0" target="0" unit="${address.unit}"/>` : '';
  return `<disk type="file" device="cdrom"><driver name="qemu" type="raw"/>${medium}<target dev="${escapeXml(target)}" bus="${escapeXml(bus)}"/><readonly/>${at}</disk>`;
}

/**
 * The actions that make the drives hold the wanted images. A layer keeps its drive; a new layer
 * takes the first empty, unassigned drive, else a hot-plugged one (with `room`); a removed
 * layer's drive is emptied and freed, or unplugged if recontext hot-plugged it. A layer on a
 * hot-plugged drive changes to a new drive (see the libvirt facts above).
 * Idempotent: with the observed state already right, the plan is empty.
 */
export function planDevices(observed: readonly ObservedCdrom[], recorded: readonly Assignment[], wanted: readonly WantedLayer[], room?: ScsiRoom): DevicePlan {
  const drives = new Map(observed.map((d) => [d.target, d]));
  const images = new Map(wanted.map((w) => [w.name, w.image]));
  // Only assignments to drives that still exist count (an unplug may have finished after a crash).
  const kept = recorded.filter((a) => drives.has(a.target)).sort(byTarget);
  const holdsImage = (a: Assignment) => drives.get(a.target)!.source === images.get(a.layer);
  // A layer keeps one drive: the one with its image, else its first. A crash between plugging a
  // replacement and unplugging the old drive leaves a layer two.
  const current = new Map<string, Assignment>();
  for (const a of kept.filter((k) => images.has(k.layer))) {
    const other = current.get(a.layer);
    if (!other || (!holdsImage(other) && holdsImage(a))) current.set(a.layer, a);
  }
  const replaced = new Set([...current.values()].filter((a) => a.hotplugged && !holdsImage(a)));
  const freed = kept.filter((a) => current.get(a.layer) !== a || replaced.has(a));
  const free = observed
    .filter((d) => freed.some((a) => a.target === d.target && !a.hotplugged) || (!d.source && !kept.some((a) => a.target === d.target)))
    .map((d) => d.target)
    .sort();
  const needingDrive = wanted.filter((w) => !current.has(w.name) || replaced.has(current.get(w.name)!));
  const slots = hotplugSlots(room, Math.max(0, needingDrive.length - free.length));
  // Layers without a drive take one first; then a changed layer on a boot drive moves to a spare
  // EMPTY drive if one is left: inserting into an empty drive needs nothing of the guest, so the
  // new image is there at once, and the old drive is emptied afterwards (the guest lets go of it
  // in its own time). Without a spare, the medium is changed in place (the guest releases first).
  const target = new Map<string, string | undefined>();
  for (const layer of wanted) {
    const own = current.get(layer.name);
    if (!own || replaced.has(own)) target.set(layer.name, free.shift());
  }
  const moved = new Set<Assignment>();
  for (const layer of wanted) {
    const own = current.get(layer.name);
    if (!own || replaced.has(own)) continue;
    const spare = holdsImage(own) ? undefined : free.find((t) => !drives.get(t)!.source);
    if (spare !== undefined) {
      free.splice(free.indexOf(spare), 1);
      moved.add(own);
    }
    target.set(layer.name, spare ?? own.target);
  }
  const assignments: Assignment[] = [];
  const changes: DeviceAction[] = [];
  const attaches: DeviceAction[] = [];
  for (const layer of wanted) {
    const own = current.get(layer.name);
    const drive = target.get(layer.name);
    if (drive !== undefined) {
      const observedDrive = drives.get(drive)!;
      assignments.push({ layer: layer.name, target: drive, digest: layer.digest, ...(own?.target === drive && own.hotplugged ? { hotplugged: true } : {}) });
      if (observedDrive.source !== layer.image) changes.push({ kind: 'change-media', layer: layer.name, target: drive, bus: observedDrive.bus, source: layer.image });
      continue;
    }
    const slot = slots.shift()!;
    assignments.push({ layer: layer.name, target: slot.target, digest: layer.digest, hotplugged: true });
    attaches.push({ kind: 'attach', layer: layer.name, target: slot.target, bus: 'scsi', source: layer.image, controller: slot.controller, unit: slot.unit });
  }
  // A freed drive a new layer took is changed, not ejected first.
  const released = [...freed, ...moved].filter((a) => !assignments.some((n) => n.target === a.target));
  const ejects: DeviceAction[] = released
    .filter((a) => !a.hotplugged && drives.get(a.target)!.source)
    .map((a) => ({ kind: 'eject', layer: a.layer, target: a.target, bus: drives.get(a.target)!.bus }));
  const detaches: DeviceAction[] = released.filter((a) => a.hotplugged).map((a) => ({ kind: 'detach', layer: a.layer, target: a.target, bus: drives.get(a.target)!.bus }));
  const stillHeld = released.filter((a) => a.hotplugged || drives.get(a.target)!.source);
  // Make before break: every new image is in place before any old drive is emptied or unplugged.
  const actions = [changes, attaches, ejects, detaches].flatMap((group) => group.sort(byTarget));
  return { actions, intent: [...assignments, ...stillHeld].sort(byTarget), assignments: assignments.sort(byTarget) };
}

/** Whether an action puts a new image on the VM (rather than releasing an old one). */
export function isMaking(action: DeviceAction): boolean {
  return action.kind === 'change-media' || action.kind === 'attach';
}

/** `count` new drives on the room's controller: unused target names and units, lowest first. */
function hotplugSlots(room: ScsiRoom | undefined, count: number): { target: string; controller: number; unit: number }[] {
  if (count === 0) return [];
  if (!room) throw new NoFreeDriveError(count);
  const slots: { target: string; controller: number; unit: number }[] = [];
  for (let index = 0, unit = 0; slots.length < count; index++) {
    const target = diskName(index);
    if (room.usedTargets.includes(target)) continue;
    while (room.usedUnits.includes(unit)) unit++;
    slots.push({ target, controller: room.controller, unit: unit++ });
  }
  return slots;
}

/** sda … sdz, sdaa … (libvirt's names for SCSI and SATA disks). */
function diskName(index: number): string {
  let name = '';
  for (let n = index; n >= 0; n = Math.floor(n / 26) - 1) name = String.fromCharCode(97 + (n % 26)) + name;
  return `sd${name}`;
}

function byTarget(a: { target: string }, b: { target: string }): number {
  return a.target.localeCompare(b.target);
}

function escapeXml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('"', '&quot;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}
