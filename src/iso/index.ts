// Public API of the ISO9660 writer (see doc.md for the specifications it follows).
export { buildIso, toVolumeId, type IsoFileWriteOptions, type IsoImage, type IsoOptions, type IsoWriteOptions, type IsoWriteResult } from './build.js';
export { IsoInputError, IsoLimitError, IsoWriteError } from './errors.js';
export { ImageStore, type ImageStoreOptions, type PutResult } from './store.js';
export { entriesFromDirectory } from './from-directory.js';
export type { IsoContent, IsoEntry } from './tree.js';
