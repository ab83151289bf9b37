// @recontext/ffs: the Flexible File System's public API (see README.md for the device watcher seam).
export { type Layer, type LayerSource, type LayerManifest, type DirectoryLayerSpec, LayerError, readManifest, directoryLayer, parseLayerArgument, RESERVED_DIRECTORY, MANIFEST_PATH, HOOKS_PATH } from './layer.js';
export { type Stack } from './stack.js';
export { Union, type StackChange, type ChangeListener, type Attributes, type UnionOptions, STATUS_FILE } from './union.js';
export { mountOperations, mountUnion, type Mounted, type MountOptions } from './fuse.js';
export { HookRunner, type HookRun, type HookRunnerOptions } from './hooks/runner.js';
export { type Hook, type HookAction, parseHooksFile, HookFormatError } from './hooks/format.js';
export { startFfs, type Ffs, type FfsOptions } from './ffs.js';
export { jsonLogger, type Logger } from './log.js';
