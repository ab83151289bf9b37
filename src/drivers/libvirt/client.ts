// Typed calls on a libvirt connection: the handful recontext needs (look up a domain, read its
// XML and state, attach/update/detach devices, list domains, register events, migrate and abort).
import { ConnectionClosedError, LibvirtConnection, LibvirtError, type ConnectionOptions } from './connection.js';
import {
  AffectFlags,
  EventId,
  METADATA_ELEMENT,
  MigrateFlags,
  Procedure,
  readDomain,
  uuidString,
  writeDomain,
  writeTypedParams,
  type DomainEvent,
  type DomainRef,
} from './protocol.js';
import { XdrReader, XdrWriter } from './xdr.js';

export { ConnectionClosedError, LibvirtError, AffectFlags, EventId };
export type { DomainEvent, DomainRef };

export class LibvirtClient {
  readonly connection: LibvirtConnection;

  private constructor(connection: LibvirtConnection) {
    this.connection = connection;
  }

  static async connect(options: ConnectionOptions): Promise<LibvirtClient> {
    return new LibvirtClient(await LibvirtConnection.open(options));
  }

  close(): Promise<void> {
    return this.connection.closeGracefully();
  }

  async hostname(): Promise<string> {
    return new XdrReader(await this.connection.call(Procedure.CONNECT_GET_HOSTNAME)).string();
  }

  /** e.g. 9000000 for 9.0.0 */
  async libVersion(): Promise<number> {
    return Number(new XdrReader(await this.connection.call(Procedure.CONNECT_GET_LIB_VERSION)).uhyper());
  }

  /** undefined when the daemon has no domain of that name. */
  async lookupDomain(name: string): Promise<DomainRef | undefined> {
    try {
      return readDomain(new XdrReader(await this.connection.call(Procedure.DOMAIN_LOOKUP_BY_NAME, new XdrWriter().string(name).toBuffer())));
    } catch (error: unknown) {
      if (error instanceof LibvirtError && error.noDomain) return undefined;
      throw error;
    }
  }

  /** Running and defined domains (flags: ListFlags; 0 = all). */
  async listDomains(flags = 0): Promise<DomainRef[]> {
    const reply = new XdrReader(await this.connection.call(Procedure.CONNECT_LIST_ALL_DOMAINS, new XdrWriter().int(1).uint(flags).toBuffer()));
    return reply.array(16384, readDomain);
  }

  async domainXml(domain: DomainRef, flags = 0): Promise<string> {
    return new XdrReader(await this.connection.call(Procedure.DOMAIN_GET_XML_DESC, domainArgs(domain).uint(flags).toBuffer())).string();
  }

  /** virDomainState and its reason. */
  async domainState(domain: DomainRef): Promise<{ state: number; reason: number }> {
    const reply = new XdrReader(await this.connection.call(Procedure.DOMAIN_GET_STATE, domainArgs(domain).uint(0).toBuffer()));
    return { state: reply.int(), reason: reply.int() };
  }

  /** virDomainUpdateDeviceFlags: e.g. a CD-ROM with a new source. Not forced unless FORCE is in flags. */
  async updateDevice(domain: DomainRef, xml: string, flags: number = AffectFlags.LIVE): Promise<void> {
    await this.connection.call(Procedure.DOMAIN_UPDATE_DEVICE_FLAGS, domainArgs(domain).string(xml).uint(flags).toBuffer());
  }

  async attachDevice(domain: DomainRef, xml: string, flags: number = AffectFlags.LIVE): Promise<void> {
    await this.connection.call(Procedure.DOMAIN_ATTACH_DEVICE_FLAGS, domainArgs(domain).string(xml).uint(flags).toBuffer());
  }

  async detachDevice(domain: DomainRef, xml: string, flags: number = AffectFlags.LIVE): Promise<void> {
    await this.connection.call(Procedure.DOMAIN_DETACH_DEVICE_FLAGS, domainArgs(domain).string(xml).uint(flags).toBuffer());
  }

  /**
   * Sets (or, with `xml` undefined, removes) the domain's custom metadata element in namespace
   * `uri` (virDomainSetMetadata, VIR_DOMAIN_METADATA_ELEMENT).
   */
  async setMetadata(domain: DomainRef, xml: string | undefined, prefix: string, uri: string, flags: number = AffectFlags.CURRENT): Promise<void> {
    const body = domainArgs(domain)
      .int(METADATA_ELEMENT)
      .optional(xml, (w, v) => w.string(v))
      .optional(xml === undefined ? undefined : prefix, (w, v) => w.string(v))
      .optional(uri, (w, v) => w.string(v))
      .uint(flags);
    await this.connection.call(Procedure.DOMAIN_SET_METADATA, body.toBuffer());
  }

  /** Registers for an event (EventId) of every domain on this connection; returns the callback id. */
  async registerEvent(eventId: number): Promise<number> {
    const reply = await this.connection.call(Procedure.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY, new XdrWriter().int(eventId).bool(false).toBuffer());
    return new XdrReader(reply).int();
  }

  async deregisterEvent(callbackId: number, timeoutMs?: number): Promise<void> {
    await this.connection.call(Procedure.CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY, new XdrWriter().int(callbackId).toBuffer(), timeoutMs);
  }

  onEvent(listener: (callbackId: number, event: DomainEvent) => void): () => void {
    return this.connection.onEvent(listener);
  }

  /**
   * Live peer-to-peer migration: this daemon connects to `destinationUri` itself and moves the
   * domain (persistent there, undefined here). `migrateUri` is where QEMU sends the memory.
   *
   * The migration is a job of this (the source) daemon: giving up on the call would leave it
   * running. So `signal`, and the time limit (default 300 s), abort it: virDomainAbortJob, asked
   * until the daemon takes it (the job may not have begun yet), then the call's own answer is
   * awaited — an error ("operation aborted") when the abort came in time, and the domain still
   * runs here; success when the migration had already switched over. Either way it has ended.
   */
  async migrate(domain: DomainRef, destinationUri: string, options: { migrateUri?: string; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
    options.signal?.throwIfAborted();
    const body = domainArgs(domain).optional(destinationUri, (w, v) => w.string(v));
    writeTypedParams(body, options.migrateUri ? { migrate_uri: options.migrateUri } : {});
    body.opaque(Buffer.alloc(0)).uint(MigrateFlags.LIVE | MigrateFlags.PEER2PEER | MigrateFlags.PERSIST_DEST | MigrateFlags.UNDEFINE_SOURCE);
    const timeoutMs = options.timeoutMs ?? 300_000;
    const limit = AbortSignal.timeout(timeoutMs);
    const abort = options.signal ? AbortSignal.any([options.signal, limit]) : limit;
    let ended = false;
    const abortJob = async () => {
      while (!ended) {
        try {
          return await this.abortJob(domain);
        } catch (error: unknown) {
          // No job (yet, or any more): try again until the migration call has answered.
          if (!(error instanceof LibvirtError && error.operationInvalid)) return;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    };
    const onAbort = () => void abortJob();
    abort.addEventListener('abort', onAbort, { once: true });
    try {
      // The call's own bound only guards against a daemon that never answers, even after the abort.
      await this.connection.call(Procedure.DOMAIN_MIGRATE_PERFORM3_PARAMS, body.toBuffer(), timeoutMs + 60_000);
    } catch (error: unknown) {
      if (limit.aborted && !options.signal?.aborted && error instanceof LibvirtError) {
        throw new LibvirtError(error.code, error.domain, `the migration did not finish within ${timeoutMs} ms and was aborted: ${error.message}`, error.procedure);
      }
      throw error;
    } finally {
      ended = true;
      abort.removeEventListener('abort', onAbort);
    }
  }

  /** virDomainAbortJob: cancels the domain's running job (a migration); VIR_ERR_OPERATION_INVALID when it has none. */
  async abortJob(domain: DomainRef): Promise<void> {
    await this.connection.call(Procedure.DOMAIN_ABORT_JOB, domainArgs(domain).toBuffer());
  }
}

function domainArgs(domain: DomainRef): XdrWriter {
  const writer = new XdrWriter();
  writeDomain(writer, domain);
  return writer;
}

export function domainUuid(domain: DomainRef): string {
  return uuidString(domain.uuid);
}
