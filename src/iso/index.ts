// Public API of the ISO9660 writer: ECMA-119 + SUSP 1.12 + RRIP 1.12 (Rock Ridge) + Joliet.
// doc.md describes the layout, the limits and how each part is verified.
export { buildIso, toVolumeId, type IsoFileWriteOptions, type IsoImage, type IsoOptions, type IsoWriteOptions, type IsoWriteResult } from './build.js';
export { IsoInputError, IsoLimitError, IsoWriteError } from './errors.js';
export { entriesFromDirectory } from './from-directory.js';
export type { IsoContent, IsoEntry } from './tree.js';
