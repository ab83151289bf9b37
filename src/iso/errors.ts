// Typed errors of the ISO writer. Callers tell "the input is wrong" (fix the layer) from "the
// image cannot be written" (retry, disk, source file changed) with instanceof, never by message.

/**
 * The entries or options handed to buildIso cannot become an image. `path` names the offending
 * entry ('' = the image root); it is undefined when an option is at fault.
 */
export class IsoInputError extends Error {
  override readonly name: string = 'IsoInputError';
  readonly path: string | undefined;
  constructor(path: string | undefined, reason: string) {
    super(path === undefined ? reason : `${path === '' ? '(image root)' : path}: ${reason}`);
    this.path = path;
  }
}

/** The image exceeds a hard limit of the format (file ≥ 4 GiB, too many directories, …). */
export class IsoLimitError extends IsoInputError {
  override readonly name = 'IsoLimitError';
}

/** Writing failed after layout: a source file changed size or could not be read, or the sink failed. */
export class IsoWriteError extends Error {
  override readonly name = 'IsoWriteError';
  readonly path: string | undefined;
  constructor(message: string, options: { path?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.path = options.path;
  }
}
