// The part of fuse-native 2.2.6 (CommonJS, no types of its own) that guest/ffs uses.
declare module 'fuse-native' {
  type Callback = (...args: never[]) => void;
  interface FuseOptions {
    readonly force?: boolean;
    readonly mkdir?: boolean;
    readonly debug?: boolean;
    /** Per-operation timeout in ms (default 15000), false for none. */
    readonly timeout?: number | false;
  }
  class Fuse {
    constructor(mountpoint: string, ops: Record<string, Callback>, options?: FuseOptions);
    readonly mnt: string;
    mount(cb: (error: Error | null) => void): void;
    unmount(cb: (error: Error | null) => void): void;
    /** The -o mount option string libfuse parses ("-oa,b,c"); subclasses may build their own. */
    _fuseOptions(): string;
    static unmount(mountpoint: string, cb: (error: Error | null) => void): void;
    static readonly EROFS: number;
    static readonly ENOENT: number;
    static readonly EIO: number;
  }
  export = Fuse;
}
