// The image's metadata directory (.recontext: the manifest and the hooks) is written by the
// operator and read by the guest agent, two programs in two languages that cannot share a
// definition (the agent is Go). Each defines the names once; this test holds them together.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as operator from '../../src/crds/index.js';

const ROOT = join(import.meta.dirname, '..', '..');

/** The Go agent's constants (guest/agent/internal/layer/layer.go), evaluated: "…" strings and Reserved + "…". */
export function goLayerConstants(source: string): Record<string, string> {
  const found: Record<string, string> = {};
  for (const [, name, expression] of source.matchAll(/^\s*(?:const\s+)?(Reserved|ManifestPath|HooksPath)\s*=\s*(.+)$/gm)) {
    found[name!] = expression!
      .split('+')
      .map((part) => part.trim())
      .map((part) => (part.startsWith('"') ? (JSON.parse(part) as string) : (found[part] ?? `<unknown ${part}>`)))
      .join('');
  }
  return found;
}

describe('the image metadata names', () => {
  it('are the same in the operator and the Go agent', () => {
    const go = goLayerConstants(readFileSync(join(ROOT, 'guest', 'agent', 'internal', 'layer', 'layer.go'), 'utf8'));
    const names = { reserved: operator.RESERVED_DIRECTORY, manifest: operator.MANIFEST_PATH, hooks: operator.HOOKS_PATH };
    expect(names).toEqual({ reserved: '.recontext', manifest: '.recontext/manifest.json', hooks: '.recontext/hooks.json' });
    expect({ reserved: go.Reserved, manifest: go.ManifestPath, hooks: go.HooksPath }).toEqual(names);
  });

  it('reads the Go constants as Go would (and would see a change)', () => {
    expect(goLayerConstants('const Reserved = ".meta"\nconst (\n\tManifestPath = Reserved + "/m.json"\n\tHooksPath    = Reserved + "/h.json"\n)\n')).toEqual({ Reserved: '.meta', ManifestPath: '.meta/m.json', HooksPath: '.meta/h.json' });
  });
});
