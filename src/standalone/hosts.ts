// Which libvirt hosts standalone mode drives, and the facts templates see about each (node.name,
// node.labels: zone, region …). They come from a hosts file beside the manifests:
//
//   hosts:
//     - name: host-a
//       uri: qemu+unix:///system?socket=/run/libvirt/libvirt-sock
//       labels: { topology.kubernetes.io/zone: zone-a }
//
// and from --libvirt URIs, which pick hosts of the file (or add hosts without labels).
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { LibvirtHost } from '../drivers/libvirt/driver.js';
import { isRecord } from '../crds/validate.js';

export const HOSTS_FILE = 'hosts.yaml';
const DEFAULT_SOCKET = '/run/libvirt/libvirt-sock';

export class HostsError extends Error {
  override readonly name = 'HostsError';
}

/** Where a libvirt URI leads on this machine: its daemon's unix socket and the driver URI to open there. */
export interface LibvirtEndpoint {
  readonly socketPath: string;
  /** The URI without transport and socket, as the daemon opens it (qemu:///system). */
  readonly driverUri: string;
}

/**
 * Parses the local forms of libvirt URIs: qemu:///system and qemu+unix:///system?socket=PATH.
 * Remote transports (tcp, tls, ssh) are refused clearly: the operator runs beside libvirtd.
 */
export function parseLibvirtUri(uri: string): LibvirtEndpoint {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new HostsError(`"${uri}" is not a libvirt URI (expected e.g. qemu:///system or qemu+unix:///system?socket=/run/libvirt/libvirt-sock)`);
  }
  const [driver, transport] = url.protocol.replace(/:$/, '').split('+');
  if (!driver || (transport !== undefined && transport !== 'unix')) {
    throw new HostsError(`libvirt URI "${uri}": transport "${transport}" is not supported; run the operator on the host and use qemu+unix:// (or qemu://) with its local socket`);
  }
  if (url.hostname) throw new HostsError(`libvirt URI "${uri}" names a remote host (${url.hostname}); only local daemons are supported`);
  const path = url.pathname || '/system';
  const socket = url.searchParams.get('socket');
  if (socket !== null && !socket.startsWith('/')) throw new HostsError(`libvirt URI "${uri}": socket must be an absolute path`);
  return { socketPath: socket ?? DEFAULT_SOCKET, driverUri: `${driver}://${path}` };
}

interface HostEntry {
  readonly name: string;
  readonly uri: string;
  readonly labels: Record<string, string>;
}

/** Reads and checks a hosts file; every problem names the file and the entry. */
export function readHostsFile(file: string): HostEntry[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error: unknown) {
    throw new HostsError(`cannot read hosts file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const document = parseDocument(text, { version: '1.1' });
  if (document.errors.length > 0) throw new HostsError(`${file}: ${document.errors[0]!.message}`);
  const root: unknown = document.toJS();
  if (!isRecord(root) || !Array.isArray(root.hosts)) throw new HostsError(`${file}: expected a mapping with a "hosts" list`);
  const unknownKeys = Object.keys(root).filter((k) => k !== 'hosts');
  if (unknownKeys.length > 0) throw new HostsError(`${file}: unknown field ${unknownKeys.map((k) => `"${k}"`).join(', ')}`);
  const seen = new Set<string>();
  return root.hosts.map((entry: unknown, index: number) => {
    const where = `${file}: hosts[${index}]`;
    if (!isRecord(entry)) throw new HostsError(`${where}: expected a mapping with name, uri and labels`);
    const extra = Object.keys(entry).filter((k) => !['name', 'uri', 'labels'].includes(k));
    if (extra.length > 0) throw new HostsError(`${where}: unknown field ${extra.map((k) => `"${k}"`).join(', ')}`);
    const { name, uri, labels = {} } = entry;
    if (typeof name !== 'string' || !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) throw new HostsError(`${where}.name: must be a DNS-1123 name, got ${JSON.stringify(name)}`);
    if (seen.has(name)) throw new HostsError(`${where}.name: host "${name}" is listed twice`);
    seen.add(name);
    if (typeof uri !== 'string') throw new HostsError(`${where}.uri: must be a libvirt URI string`);
    try {
      parseLibvirtUri(uri);
    } catch (error: unknown) {
      throw new HostsError(`${where}.uri: ${(error as Error).message}`);
    }
    if (!isRecord(labels) || Object.values(labels).some((v) => typeof v !== 'string')) throw new HostsError(`${where}.labels: must map label names to strings`);
    return { name, uri, labels: labels as Record<string, string> };
  });
}

/**
 * The hosts to drive: those of --libvirt (matched to the file by URI; unknown ones get a name
 * from their socket and no labels), or every host of the file when no URI is given.
 */
export function resolveHosts(entries: readonly HostEntry[], uris: readonly string[], warn: (message: string) => void): LibvirtHost[] {
  const chosen: HostEntry[] = uris.length === 0 ? [...entries] : uris.map((uri) => entries.find((e) => e.uri === uri) ?? unlisted(uri, warn));
  if (chosen.length === 0) throw new HostsError('no libvirt host to drive: give --libvirt URI[,URI…] or list hosts in the hosts file');
  const names = new Set<string>();
  return chosen.map((entry) => {
    if (names.has(entry.name)) throw new HostsError(`host "${entry.name}" is given twice`);
    names.add(entry.name);
    const endpoint = parseLibvirtUri(entry.uri);
    return { name: entry.name, socketPath: endpoint.socketPath, uri: endpoint.driverUri, labels: entry.labels };
  });
}

function unlisted(uri: string, warn: (message: string) => void): HostEntry {
  const { socketPath } = parseLibvirtUri(uri);
  const name = socketPath.replace(/\/libvirt-sock$/, '').split('/').filter(Boolean).filter((part) => part !== 'run' && part !== 'libvirt').join('-').toLowerCase().replace(/[^a-z0-9.-]/g, '-') || 'localhost';
  warn(`libvirt URI ${uri} is not in the hosts file: driving it as host "${name}" without labels (templates that use node labels will not render for it)`);
  return { name, uri, labels: {} };
}
