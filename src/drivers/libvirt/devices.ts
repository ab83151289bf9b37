// Which CD-ROM drive of a libvirt domain carries which layer, and what to change so that it
// carries the desired images: pure functions over the live domain XML (KubeVirt's syncDisks,
// STYLE.md: read observed, diff against desired, apply in a fixed order).
//
// The layer → drive assignment is recorded in the domain's own <metadata>, so it survives an
// operator restart and travels with the domain through a live migration. Drives recontext did
// not assign and that hold a medium (a cloud-init ISO, say) are never touched. SATA drives cannot
// be hot-plugged: a domain needs one empty drive per layer when it starts.
import { XMLParser } from 'fast-xml-parser';

export const METADATA_NAMESPACE = 'https://recontext.dev/libvirt/v1alpha1';
export const METADATA_PREFIX = 'recontext';

export interface ObservedCdrom {
  /** Target device name in the domain (sda, sdb …). */
  readonly target: string;
  readonly bus: string;
  /** Image file, or undefined for an empty drive (tray open or no medium). */
  readonly source?: string;
}

export interface Assignment {
  readonly layer: string;
  readonly target: string;
  readonly digest: string;
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
  | { readonly kind: 'eject'; readonly layer: string; readonly target: string; readonly bus: string };

export interface DevicePlan {
  /** In the order to apply: ejects first, then media changes, each by target name. */
  readonly actions: readonly DeviceAction[];
  /**
   * What to record before acting: every drive this plan touches is claimed first, so a crash
   * half-way leaves no medium of ours in a drive the record does not name.
   */
  readonly intent: readonly Assignment[];
  /** The assignment to record once the actions succeeded. */
  readonly assignments: readonly Assignment[];
}

/** The domain has fewer free drives than it has layers. */
export class NoFreeDriveError extends Error {
  override readonly name = 'NoFreeDriveError';
  constructor(readonly missing: number) {
    super(`the domain needs ${missing} more empty CD-ROM drive${missing === 1 ? '' : 's'} (one per layer; SATA drives cannot be hot-plugged)`);
  }
}

const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', removeNSPrefix: false, isArray: (name) => ['disk', 'layer'].includes(name) || name.endsWith(':layer') });

type XmlNode = Record<string, unknown>;

/** The CD-ROM drives of a domain, from `virDomainGetXMLDesc`. */
export function cdromsOf(domainXml: string): ObservedCdrom[] {
  const doc = parser.parse(domainXml) as { domain?: { devices?: { disk?: XmlNode[] } } };
  return (doc.domain?.devices?.disk ?? [])
    .filter((disk) => disk.device === 'cdrom')
    .map((disk) => {
      const target = disk.target as XmlNode | undefined;
      const source = (disk.source as XmlNode | undefined)?.file;
      return { target: String(target?.dev ?? ''), bus: String(target?.bus ?? ''), ...(typeof source === 'string' && source ? { source } : {}) };
    })
    .filter((cdrom) => cdrom.target !== '');
}

/** The assignment recorded in the domain's metadata (none when never recorded). */
export function assignmentsOf(domainXml: string): Assignment[] {
  const doc = parser.parse(domainXml) as { domain?: { metadata?: XmlNode } };
  const metadata = doc.domain?.metadata ?? {};
  const root = Object.entries(metadata).find(([key, value]) => key.endsWith('layers') && typeof value === 'object' && (value as XmlNode)[`xmlns:${key.split(':')[0]}`] === METADATA_NAMESPACE)?.[1] as XmlNode | undefined;
  const layers = (Object.entries(root ?? {}).find(([key]) => key === 'layer' || key.endsWith(':layer'))?.[1] ?? []) as XmlNode[];
  return layers.map((l) => ({ layer: String(l.name), target: String(l.target), digest: String(l.digest) }));
}

/**
 * The metadata element recording `assignments`, for virDomainSetMetadata: unprefixed and without
 * a namespace declaration — libvirt puts it into METADATA_NAMESPACE under METADATA_PREFIX itself.
 */
export function assignmentsXml(assignments: readonly Assignment[]): string {
  const rows = [...assignments]
    .sort((a, b) => a.target.localeCompare(b.target))
    .map((a) => `<layer name="${escapeXml(a.layer)}" target="${escapeXml(a.target)}" digest="${escapeXml(a.digest)}"/>`);
  return `<layers>${rows.join('')}</layers>`;
}

/** The device XML of a media change for virDomainUpdateDeviceFlags (no source: eject). */
export function cdromXml(target: string, bus: string, source?: string): string {
  const medium = source ? `<source file="${escapeXml(source)}"/>` : '';
  return `<disk type="file" device="cdrom"><driver name="qemu" type="raw"/>${medium}<target dev="${escapeXml(target)}" bus="${escapeXml(bus)}"/><readonly/></disk>`;
}

/**
 * The actions that make the drives hold the wanted images. A layer keeps its drive; a new layer
 * takes the first empty, unassigned drive; a removed layer's drive is emptied and freed.
 * Idempotent: with the observed state already right, the plan is empty.
 */
export function planDevices(observed: readonly ObservedCdrom[], recorded: readonly Assignment[], wanted: readonly WantedLayer[]): DevicePlan {
  const drives = new Map(observed.map((d) => [d.target, d]));
  const wantedNames = new Set(wanted.map((w) => w.name));
  // Only assignments to drives that still exist count.
  const kept = recorded.filter((a) => drives.has(a.target));
  const byLayer = new Map(kept.filter((a) => wantedNames.has(a.layer)).map((a) => [a.layer, a.target]));
  const freed = kept.filter((a) => !wantedNames.has(a.layer));
  const taken = new Set(byLayer.values());
  const free = observed
    .filter((d) => !taken.has(d.target) && (freed.some((a) => a.target === d.target) || (!d.source && !kept.some((a) => a.target === d.target))))
    .map((d) => d.target)
    .sort();
  const missing = wanted.filter((w) => !byLayer.has(w.name)).length - free.length;
  if (missing > 0) throw new NoFreeDriveError(missing);
  const assignments: Assignment[] = [];
  const changes: DeviceAction[] = [];
  for (const layer of wanted) {
    const target = byLayer.get(layer.name) ?? free.shift()!;
    const drive = drives.get(target)!;
    assignments.push({ layer: layer.name, target, digest: layer.digest });
    if (drive.source !== layer.image) changes.push({ kind: 'change-media', layer: layer.name, target, bus: drive.bus, source: layer.image });
  }
  // A freed drive a new layer took is changed, not ejected first.
  const ejects: DeviceAction[] = freed
    .filter((a) => !assignments.some((n) => n.target === a.target) && drives.get(a.target)!.source)
    .map((a) => ({ kind: 'eject', layer: a.layer, target: a.target, bus: drives.get(a.target)!.bus }));
  const byTarget = (a: DeviceAction, b: DeviceAction) => a.target.localeCompare(b.target);
  const sorted = assignments.sort((a, b) => a.target.localeCompare(b.target));
  const stillHeld = freed.filter((a) => !sorted.some((n) => n.target === a.target) && drives.get(a.target)!.source);
  return { actions: [...ejects.sort(byTarget), ...changes.sort(byTarget)], intent: [...sorted, ...stillHeld].sort((a, b) => a.target.localeCompare(b.target)), assignments: sorted };
}

function escapeXml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('"', '&quot;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}
