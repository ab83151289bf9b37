// The parts of libvirt's remote protocol recontext speaks (src/remote/remote_protocol.x and
// src/rpc/virnetprotocol.x in libvirt): the packet header, the procedures we call, the events we
// register for, and the structures they carry. Numbers are part of libvirt's stable wire ABI.
import { STRING_MAX, XdrError, XdrReader, XdrWriter } from './xdr.js';

export const REMOTE_PROGRAM = 0x20008086;
export const REMOTE_PROTOCOL_VERSION = 1;
/** virkeepaliveprotocol.x: 'keep'. */
export const KEEPALIVE_PROGRAM = 0x6b656570;
export const KEEPALIVE_VERSION = 1;
export const KEEPALIVE_PING = 1;
export const KEEPALIVE_PONG = 2;

/** VIR_NET_MESSAGE_MAX: a packet larger than this is a protocol error. */
export const MESSAGE_MAX = 32 * 1024 * 1024;
export const HEADER_BYTES = 24;

export const enum MessageType {
  Call = 0,
  Reply = 1,
  Message = 2,
  Stream = 3,
}

export const enum MessageStatus {
  Ok = 0,
  Error = 1,
  Continue = 2,
}

export const Procedure = {
  CONNECT_OPEN: 1,
  CONNECT_CLOSE: 2,
  DOMAIN_GET_XML_DESC: 14,
  DOMAIN_LOOKUP_BY_NAME: 23,
  DOMAIN_LOOKUP_BY_UUID: 24,
  CONNECT_GET_HOSTNAME: 59,
  CONNECT_SUPPORTS_FEATURE: 60,
  AUTH_LIST: 66,
  CONNECT_GET_LIB_VERSION: 157,
  DOMAIN_ATTACH_DEVICE_FLAGS: 160,
  DOMAIN_DETACH_DEVICE_FLAGS: 161,
  DOMAIN_ABORT_JOB: 164,
  DOMAIN_UPDATE_DEVICE_FLAGS: 174,
  DOMAIN_GET_STATE: 212,
  DOMAIN_SET_METADATA: 264,
  CONNECT_LIST_ALL_DOMAINS: 273,
  DOMAIN_MIGRATE_PERFORM3_PARAMS: 305,
  CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: 316,
  CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: 317,
  DOMAIN_EVENT_CALLBACK_LIFECYCLE: 318,
  DOMAIN_EVENT_CALLBACK_TRAY_CHANGE: 328,
  DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED: 333,
  DOMAIN_EVENT_CALLBACK_DEVICE_ADDED: 354,
  DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION: 359,
  DOMAIN_EVENT_CALLBACK_JOB_COMPLETED: 363,
} as const;

/** virDomainEventID */
export const EventId = {
  LIFECYCLE: 0,
  TRAY_CHANGE: 10,
  DEVICE_REMOVED: 15,
  DEVICE_ADDED: 19,
  MIGRATION_ITERATION: 20,
  JOB_COMPLETED: 21,
} as const;

/** virDomainEventType and the details we act on. */
export const Lifecycle = {
  DEFINED: 0,
  UNDEFINED: 1,
  STARTED: 2,
  SUSPENDED: 3,
  RESUMED: 4,
  STOPPED: 5,
  SHUTDOWN: 6,
  CRASHED: 8,
  STARTED_BOOTED: 0,
  STARTED_MIGRATED: 1,
  SUSPENDED_PAUSED: 0,
  SUSPENDED_MIGRATED: 1,
  RESUMED_UNPAUSED: 0,
  RESUMED_MIGRATED: 1,
  STOPPED_MIGRATED: 3,
} as const;

/** virDomainState */
export const DomainState = { NOSTATE: 0, RUNNING: 1, BLOCKED: 2, PAUSED: 3, SHUTDOWN: 4, SHUTOFF: 5, CRASHED: 6, PMSUSPENDED: 7 } as const;

/** virDomainPausedReason: MIGRATION while a live migration's last phase runs (either side). */
export const PausedReason = { UNKNOWN: 0, USER: 1, MIGRATION: 2, POSTCOPY: 12 } as const;

/** virDomainRunningReason: why a domain runs (MIGRATED on the destination of a migration). */
export const RunningReason = { UNKNOWN: 0, BOOTED: 1, MIGRATED: 2 } as const;
/** VIR_DOMAIN_METADATA_ELEMENT */
export const METADATA_ELEMENT = 2;

/** virDomainModificationImpact / virDomainDeviceModifyFlags */
export const AffectFlags = { CURRENT: 0, LIVE: 1, CONFIG: 2, FORCE: 4 } as const;
/** virDomainMigrateFlags */
export const MigrateFlags = { LIVE: 1, PEER2PEER: 2, PERSIST_DEST: 8, UNDEFINE_SOURCE: 16 } as const;
/** virConnectListAllDomainsFlags */
export const ListFlags = { ACTIVE: 1, INACTIVE: 2 } as const;
/** VIR_DRV_FEATURE_PROGRAM_KEEPALIVE */
export const FEATURE_PROGRAM_KEEPALIVE = 14;

export interface Header {
  readonly program: number;
  readonly version: number;
  readonly procedure: number;
  readonly type: number;
  readonly serial: number;
  readonly status: number;
}

/** A whole packet: 4-byte length (counting itself), header, body. */
export function encodePacket(header: Header, body: Buffer = Buffer.alloc(0)): Buffer {
  const packet = Buffer.alloc(4 + HEADER_BYTES + body.length);
  packet.writeUInt32BE(packet.length, 0);
  packet.writeUInt32BE(header.program, 4);
  packet.writeUInt32BE(header.version, 8);
  packet.writeInt32BE(header.procedure, 12);
  packet.writeInt32BE(header.type, 16);
  packet.writeUInt32BE(header.serial, 20);
  packet.writeInt32BE(header.status, 24);
  body.copy(packet, 28);
  return packet;
}

/** Header and body of a packet without its length word. */
export function decodePacket(packet: Buffer): { header: Header; body: Buffer } {
  if (packet.length < HEADER_BYTES) throw new XdrError(`packet of ${packet.length} bytes is shorter than a header`);
  return {
    header: {
      program: packet.readUInt32BE(0),
      version: packet.readUInt32BE(4),
      procedure: packet.readInt32BE(8),
      type: packet.readInt32BE(12),
      serial: packet.readUInt32BE(16),
      status: packet.readInt32BE(20),
    },
    body: packet.subarray(HEADER_BYTES),
  };
}

/** remote_nonnull_domain: how a domain is named on the wire. */
export interface DomainRef {
  readonly name: string;
  /** 16 raw bytes. */
  readonly uuid: Buffer;
  /** -1 when not running. */
  readonly id: number;
}

export function writeDomain(writer: XdrWriter, domain: DomainRef): void {
  writer.string(domain.name).fixedOpaque(domain.uuid).int(domain.id);
}

export function readDomain(reader: XdrReader): DomainRef {
  return { name: reader.string(), uuid: reader.fixedOpaque(16), id: reader.int() };
}

export function uuidString(uuid: Buffer): string {
  const hex = uuid.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** remote_error, as an error reply carries it. */
export interface RemoteError {
  readonly code: number;
  readonly domain: number;
  readonly message: string;
  readonly level: number;
}

export function readRemoteError(reader: XdrReader): RemoteError {
  const code = reader.int();
  const domain = reader.int();
  const message = reader.optional((r) => r.string()) ?? '';
  const level = reader.int();
  // dom, str1..3, int1, int2, net follow; nothing we use.
  return { code, domain, message, level };
}

/** virTypedParameter on the wire: field name, type tag, value. */
export type TypedValue = number | bigint | boolean | string;

export function writeTypedParams(writer: XdrWriter, params: Readonly<Record<string, TypedValue>>): void {
  const entries = Object.entries(params);
  writer.uint(entries.length);
  for (const [field, value] of entries) {
    writer.string(field);
    if (typeof value === 'string') writer.int(7).string(value);
    else if (typeof value === 'boolean') writer.int(6).int(value ? 1 : 0);
    else if (typeof value === 'bigint') writer.int(4).uhyper(value);
    else writer.int(2).uint(value);
  }
}

export function readTypedParams(reader: XdrReader): Record<string, TypedValue> {
  const params: Record<string, TypedValue> = {};
  for (const [field, value] of reader.array(4096, (r) => {
    const name = r.string();
    const type = r.int();
    switch (type) {
      case 1: return [name, r.int()] as const;
      case 2: return [name, r.uint()] as const;
      case 3: return [name, r.hyper()] as const;
      case 4: return [name, r.uhyper()] as const;
      case 5: return [name, r.double()] as const;
      case 6: return [name, r.int() !== 0] as const;
      case 7: return [name, r.string()] as const;
      default: throw new XdrError(`unknown typed parameter type ${type} for ${name}`);
    }
  })) params[field] = value;
  return params;
}

/** The domain events recontext listens to, decoded. */
export type DomainEvent =
  | { readonly kind: 'lifecycle'; readonly domain: DomainRef; readonly event: number; readonly detail: number }
  | { readonly kind: 'tray-change'; readonly domain: DomainRef; readonly devAlias: string; readonly reason: 'open' | 'close' }
  | { readonly kind: 'device-removed'; readonly domain: DomainRef; readonly devAlias: string }
  | { readonly kind: 'device-added'; readonly domain: DomainRef; readonly devAlias: string }
  | { readonly kind: 'migration-iteration'; readonly domain: DomainRef; readonly iteration: number }
  | { readonly kind: 'job-completed'; readonly domain: DomainRef; readonly stats: Record<string, TypedValue> };

/** Decodes an event message body; the callbackID comes first in every one. */
export function decodeEvent(procedure: number, body: Buffer): { callbackId: number; event: DomainEvent } | undefined {
  const r = new XdrReader(body);
  const callbackId = r.int();
  switch (procedure) {
    case Procedure.DOMAIN_EVENT_CALLBACK_LIFECYCLE:
      return { callbackId, event: { kind: 'lifecycle', domain: readDomain(r), event: r.int(), detail: r.int() } };
    case Procedure.DOMAIN_EVENT_CALLBACK_TRAY_CHANGE: {
      const domain = readDomain(r);
      const devAlias = r.string();
      return { callbackId, event: { kind: 'tray-change', domain, devAlias, reason: r.int() === 0 ? 'open' : 'close' } };
    }
    case Procedure.DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED:
      return { callbackId, event: { kind: 'device-removed', domain: readDomain(r), devAlias: r.string() } };
    case Procedure.DOMAIN_EVENT_CALLBACK_DEVICE_ADDED:
      return { callbackId, event: { kind: 'device-added', domain: readDomain(r), devAlias: r.string() } };
    case Procedure.DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION:
      return { callbackId, event: { kind: 'migration-iteration', domain: readDomain(r), iteration: r.int() } };
    case Procedure.DOMAIN_EVENT_CALLBACK_JOB_COMPLETED:
      return { callbackId, event: { kind: 'job-completed', domain: readDomain(r), stats: readTypedParams(r) } };
    default:
      return undefined;
  }
}

export { STRING_MAX, XdrReader, XdrWriter };
