// XDR (RFC 4506) encoding, the body format of libvirt's remote protocol: big-endian 4-byte
// units, strings and opaques length-prefixed and zero-padded to 4 bytes, optional values as a
// bool followed by the value.

/** The input ended or held something XDR does not allow; the connection must be dropped. */
export class XdrError extends Error {
  override readonly name = 'XdrError';
}

export class XdrWriter {
  #buffer = Buffer.alloc(256);
  #length = 0;

  #reserve(bytes: number): void {
    if (this.#length + bytes <= this.#buffer.length) return;
    const grown = Buffer.alloc(Math.max(this.#buffer.length * 2, this.#length + bytes));
    this.#buffer.copy(grown, 0, 0, this.#length);
    this.#buffer = grown;
  }

  int(value: number): this {
    this.#reserve(4);
    this.#buffer.writeInt32BE(value, this.#length);
    this.#length += 4;
    return this;
  }

  uint(value: number): this {
    this.#reserve(4);
    this.#buffer.writeUInt32BE(value >>> 0, this.#length);
    this.#length += 4;
    return this;
  }

  hyper(value: bigint): this {
    this.#reserve(8);
    this.#buffer.writeBigInt64BE(value, this.#length);
    this.#length += 8;
    return this;
  }

  uhyper(value: bigint): this {
    this.#reserve(8);
    this.#buffer.writeBigUInt64BE(value, this.#length);
    this.#length += 8;
    return this;
  }

  bool(value: boolean): this {
    return this.int(value ? 1 : 0);
  }

  /** Variable-length opaque: length, bytes, padding. */
  opaque(bytes: Buffer): this {
    this.uint(bytes.length);
    return this.fixedOpaque(bytes);
  }

  /** Fixed-length opaque (e.g. a 16-byte UUID): bytes and padding, no length. */
  fixedOpaque(bytes: Buffer): this {
    const padded = (bytes.length + 3) & ~3;
    this.#reserve(padded);
    bytes.copy(this.#buffer, this.#length);
    this.#buffer.fill(0, this.#length + bytes.length, this.#length + padded);
    this.#length += padded;
    return this;
  }

  string(value: string): this {
    return this.opaque(Buffer.from(value, 'utf8'));
  }

  optional<T>(value: T | undefined, write: (writer: this, value: T) => void): this {
    this.bool(value !== undefined);
    if (value !== undefined) write(this, value);
    return this;
  }

  toBuffer(): Buffer {
    return this.#buffer.subarray(0, this.#length);
  }
}

export class XdrReader {
  readonly #buffer: Buffer;
  #offset = 0;

  constructor(buffer: Buffer) {
    this.#buffer = buffer;
  }

  get remaining(): number {
    return this.#buffer.length - this.#offset;
  }

  #need(bytes: number): void {
    if (this.#offset + bytes > this.#buffer.length) throw new XdrError(`XDR: need ${bytes} bytes at offset ${this.#offset}, have ${this.remaining}`);
  }

  int(): number {
    this.#need(4);
    const value = this.#buffer.readInt32BE(this.#offset);
    this.#offset += 4;
    return value;
  }

  uint(): number {
    this.#need(4);
    const value = this.#buffer.readUInt32BE(this.#offset);
    this.#offset += 4;
    return value;
  }

  hyper(): bigint {
    this.#need(8);
    const value = this.#buffer.readBigInt64BE(this.#offset);
    this.#offset += 8;
    return value;
  }

  uhyper(): bigint {
    this.#need(8);
    const value = this.#buffer.readBigUInt64BE(this.#offset);
    this.#offset += 8;
    return value;
  }

  double(): number {
    this.#need(8);
    const value = this.#buffer.readDoubleBE(this.#offset);
    this.#offset += 8;
    return value;
  }

  bool(): boolean {
    const value = this.int();
    if (value !== 0 && value !== 1) throw new XdrError(`XDR: bool must be 0 or 1, got ${value}`);
    return value === 1;
  }

  /** Variable-length opaque, refusing lengths above `max` (a corrupt or hostile peer). */
  opaque(max: number): Buffer {
    const length = this.uint();
    if (length > max) throw new XdrError(`XDR: opaque of ${length} bytes exceeds the limit of ${max}`);
    return this.fixedOpaque(length);
  }

  fixedOpaque(length: number): Buffer {
    const padded = (length + 3) & ~3;
    this.#need(padded);
    const value = this.#buffer.subarray(this.#offset, this.#offset + length);
    this.#offset += padded;
    return Buffer.from(value);
  }

  string(max = STRING_MAX): string {
    return this.opaque(max).toString('utf8');
  }

  optional<T>(read: (reader: this) => T): T | undefined {
    return this.bool() ? read(this) : undefined;
  }

  array<T>(max: number, read: (reader: this) => T): T[] {
    const count = this.uint();
    if (count > max) throw new XdrError(`XDR: array of ${count} items exceeds the limit of ${max}`);
    const items: T[] = [];
    for (let i = 0; i < count; i++) items.push(read(this));
    return items;
  }
}

/** REMOTE_STRING_MAX in libvirt's remote_protocol.x. */
export const STRING_MAX = 4_194_304;
