import { createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionClosedError, LibvirtConnection, LibvirtError } from './connection.js';
import { decodeEvent, decodePacket, encodePacket, EventId, KEEPALIVE_PROGRAM, MessageType, Procedure, readTypedParams, REMOTE_PROGRAM, writeDomain, writeTypedParams } from './protocol.js';
import { XdrError, XdrReader, XdrWriter } from './xdr.js';

describe('XDR', () => {
  it('encodes big-endian units, padded opaques and optionals', () => {
    const bytes = new XdrWriter().int(-2).uint(0xfffffffe).string('abcde').optional<string>(undefined, (w, v) => w.string(v)).bool(true).uhyper(2n ** 40n).toBuffer();
    expect(bytes.toString('hex')).toBe(['fffffffe', 'fffffffe', '00000005', '6162636465000000', '00000000', '00000001', '0000010000000000'].join(''));
    const r = new XdrReader(bytes);
    expect([r.int(), r.uint(), r.string(), r.optional((x) => x.string()), r.bool(), r.uhyper()]).toEqual([-2, 0xfffffffe, 'abcde', undefined, true, 2n ** 40n]);
    expect(r.remaining).toBe(0);
  });

  it('refuses truncated input, bad bools and oversized lengths', () => {
    expect(() => new XdrReader(Buffer.from('000000', 'hex')).int()).toThrow(XdrError);
    expect(() => new XdrReader(Buffer.from('00000002', 'hex')).bool()).toThrow(/bool/);
    expect(() => new XdrReader(new XdrWriter().uint(1000).toBuffer()).opaque(10)).toThrow(/exceeds/);
    expect(() => new XdrReader(new XdrWriter().uint(10).toBuffer()).array(5, (r) => r.int())).toThrow(/exceeds/);
  });

  it('round-trips typed parameters', () => {
    const w = new XdrWriter();
    writeTypedParams(w, { migrate_uri: 'tcp://127.0.0.1', bandwidth: 7, big: 2n ** 33n, flag: true });
    expect(readTypedParams(new XdrReader(w.toBuffer()))).toEqual({ migrate_uri: 'tcp://127.0.0.1', bandwidth: 7, big: 2n ** 33n, flag: true });
  });
});

const domain = { name: 'vm1', uuid: Buffer.alloc(16, 7), id: 3 };

describe('packets and events', () => {
  it('frames a packet with a length word that counts itself', () => {
    const packet = encodePacket({ program: REMOTE_PROGRAM, version: 1, procedure: 66, type: MessageType.Call, serial: 9, status: 0 }, Buffer.from('abcd'));
    expect(packet.readUInt32BE(0)).toBe(packet.length);
    expect(decodePacket(packet.subarray(4))).toEqual({ header: { program: REMOTE_PROGRAM, version: 1, procedure: 66, type: 0, serial: 9, status: 0 }, body: Buffer.from('abcd') });
  });

  it('decodes the events the driver listens to', () => {
    const lifecycle = new XdrWriter().int(4);
    writeDomain(lifecycle, domain);
    lifecycle.int(2).int(1);
    expect(decodeEvent(Procedure.DOMAIN_EVENT_CALLBACK_LIFECYCLE, lifecycle.toBuffer())).toEqual({ callbackId: 4, event: { kind: 'lifecycle', domain, event: 2, detail: 1 } });
    const tray = new XdrWriter().int(5);
    writeDomain(tray, domain);
    tray.string('sata0-0-1').int(0);
    expect(decodeEvent(Procedure.DOMAIN_EVENT_CALLBACK_TRAY_CHANGE, tray.toBuffer())).toEqual({ callbackId: 5, event: { kind: 'tray-change', domain, devAlias: 'sata0-0-1', reason: 'open' } });
    const removed = new XdrWriter().int(6);
    writeDomain(removed, domain);
    removed.string('scsi0-0-0-1');
    expect(decodeEvent(Procedure.DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED, removed.toBuffer())?.event).toMatchObject({ kind: 'device-removed', devAlias: 'scsi0-0-0-1' });
    expect(decodeEvent(9999, Buffer.from('00000001', 'hex'))).toBeUndefined();
    expect(EventId.TRAY_CHANGE).toBe(10);
  });

  // remote_protocol.x: remote_domain_event_callback_{device_added,migration_iteration,job_completed}_msg
  // carry callbackID, dom, then devAlias / int iteration / remote_typed_param params<>.
  it('decodes device-added, migration-iteration and job-completed by their XDR layout', () => {
    const added = new XdrWriter().int(7);
    writeDomain(added, domain);
    added.string('scsi0-0-0-2');
    expect(decodeEvent(Procedure.DOMAIN_EVENT_CALLBACK_DEVICE_ADDED, added.toBuffer())).toEqual({ callbackId: 7, event: { kind: 'device-added', domain, devAlias: 'scsi0-0-0-2' } });
    const iteration = new XdrWriter().int(8);
    writeDomain(iteration, domain);
    iteration.int(3);
    expect(iteration.toBuffer().subarray(-4).toString('hex')).toBe('00000003');
    expect(decodeEvent(Procedure.DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION, iteration.toBuffer())).toEqual({ callbackId: 8, event: { kind: 'migration-iteration', domain, iteration: 3 } });
    const completed = new XdrWriter().int(9);
    writeDomain(completed, domain);
    // Three params: type (int, tag 1), time_elapsed (ullong, tag 4), a string one (tag 7).
    completed.uint(3).string('type').int(1).int(3).string('time_elapsed').int(4).uhyper(1234n).string('note').int(7).string('x');
    expect(decodeEvent(Procedure.DOMAIN_EVENT_CALLBACK_JOB_COMPLETED, completed.toBuffer())).toEqual({
      callbackId: 9,
      event: { kind: 'job-completed', domain, stats: { type: 3, time_elapsed: 1234n, note: 'x' } },
    });
    expect([Procedure.DOMAIN_EVENT_CALLBACK_DEVICE_ADDED, Procedure.DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION, Procedure.DOMAIN_EVENT_CALLBACK_JOB_COMPLETED]).toEqual([354, 359, 363]);
    expect([EventId.DEVICE_ADDED, EventId.MIGRATION_ITERATION, EventId.JOB_COMPLETED]).toEqual([19, 20, 21]);
  });
});

describe('LibvirtConnection against a scripted peer', () => {
  let server: Server | undefined;
  afterEach(() => server?.close());

  /** A peer that answers AUTH_LIST/CONNECT_OPEN, then runs `script` on later calls. */
  async function peer(script: (socket: Socket, header: ReturnType<typeof decodePacket>['header']) => void): Promise<string> {
    const path = join(mkdtempSync(join(tmpdir(), 'lv-')), 'sock');
    server = createServer((socket) => {
      let buffered = Buffer.alloc(0);
      socket.on('data', (chunk) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 4 && buffered.length >= buffered.readUInt32BE(0)) {
          const { header } = decodePacket(buffered.subarray(4, buffered.readUInt32BE(0)));
          buffered = buffered.subarray(buffered.readUInt32BE(0));
          if (header.procedure === Procedure.AUTH_LIST) socket.write(encodePacket({ ...header, type: MessageType.Reply }, new XdrWriter().uint(1).int(0).toBuffer()));
          else if (header.procedure === Procedure.CONNECT_OPEN) socket.write(encodePacket({ ...header, type: MessageType.Reply }));
          else script(socket, header);
        }
      });
    });
    await new Promise<void>((resolve) => server!.listen(path, resolve));
    return path;
  }

  it('reassembles replies split at any byte and matches them by serial', async () => {
    const path = await peer((socket, header) => {
      const reply = encodePacket({ ...header, type: MessageType.Reply }, new XdrWriter().string(`host-${header.serial}`).toBuffer());
      for (const byte of reply) socket.write(Buffer.from([byte]));
    });
    const connection = await LibvirtConnection.open({ socketPath: path });
    const replies = await Promise.all([connection.call(Procedure.CONNECT_GET_HOSTNAME), connection.call(Procedure.CONNECT_GET_HOSTNAME)]);
    expect(replies.map((r) => new XdrReader(r).string())).toEqual(['host-3', 'host-4']);
    connection.close();
  });

  it('turns an error reply into a LibvirtError with libvirt\'s code and message', async () => {
    const path = await peer((socket, header) => {
      const error = new XdrWriter().int(42).int(10).optional('Domain not found: no domain with matching name', (w, v) => w.string(v)).int(2).bool(false).bool(false).bool(false).bool(false).int(0).int(0).bool(false);
      socket.write(encodePacket({ ...header, type: MessageType.Reply, status: 1 }, error.toBuffer()));
    });
    const connection = await LibvirtConnection.open({ socketPath: path });
    const failure = await connection.call(Procedure.DOMAIN_LOOKUP_BY_NAME, new XdrWriter().string('x').toBuffer()).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(LibvirtError);
    expect((failure as LibvirtError).noDomain).toBe(true);
    expect((failure as LibvirtError).message).toContain('Domain not found');
    connection.close();
  });

  it('answers keepalive pings and fails pending calls when the daemon goes away', async () => {
    let pong = false;
    const path = await peer((socket, header) => {
      if (header.program === KEEPALIVE_PROGRAM) {
        pong = header.procedure === 2;
        socket.destroy();
        return;
      }
      socket.write(encodePacket({ program: KEEPALIVE_PROGRAM, version: 1, procedure: 1, type: MessageType.Message, serial: 0, status: 0 }));
    });
    const connection = await LibvirtConnection.open({ socketPath: path });
    const closed = new Promise<Error>((resolve) => connection.onClose(resolve));
    await expect(connection.call(Procedure.CONNECT_GET_HOSTNAME)).rejects.toBeInstanceOf(ConnectionClosedError);
    expect(await closed).toBeInstanceOf(ConnectionClosedError);
    expect(pong).toBe(true);
    expect(connection.closed).toBe(true);
    await expect(connection.call(Procedure.CONNECT_GET_HOSTNAME)).rejects.toBeInstanceOf(ConnectionClosedError);
  });

  it('drops a connection that announces an absurd packet length', async () => {
    const path = await peer((socket) => socket.write(Buffer.from('7fffffff', 'hex')));
    const connection = await LibvirtConnection.open({ socketPath: path });
    await expect(connection.call(Procedure.CONNECT_GET_HOSTNAME)).rejects.toThrow(/packet of \d+ bytes/);
  });
});
