// A stack: one immutable generation of the layer list. The union holds exactly one current stack
// and replaces it whole; every lookup runs against the stack that was current when it started.
import { LayerError, validateLayer, type Layer } from './layer.js';

export interface Stack {
  /** 0 for the empty stack a union starts with, then +1 per setLayers. */
  readonly generation: number;
  /** Highest priority first (equal priorities: by name). */
  readonly layers: readonly Layer[];
  readonly changedAt: Date;
}

/** Validates and orders layers into a frozen stack; throws LayerError (names must be unique). */
export function createStack(layers: readonly Layer[], generation: number, changedAt: Date): Stack {
  const names = new Set<string>();
  for (const layer of layers) {
    validateLayer(layer);
    if (names.has(layer.name)) throw new LayerError(`layer ${layer.name} is in the stack twice`);
    names.add(layer.name);
  }
  const ordered = layers
    .map((l) => Object.freeze({ ...l, source: Object.freeze({ ...l.source }) }))
    .sort((a, b) => b.priority - a.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return Object.freeze({ generation, layers: Object.freeze(ordered), changedAt });
}
