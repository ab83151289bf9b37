// Writes the ISO9660 image of a rendered layer, named by its digest: <hex>.iso in a directory.
// Interim: spawns genisoimage until the in-process writer (src/iso, issue #4) lands; the function
// signature is the seam, callers do not change when the writer does.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { manifestFile, type RenderedLayer } from '../reconcile/render.js';

const execFileAsync = promisify(execFile);

export interface LayerImage {
  readonly path: string;
  readonly bytes: number;
}

/** Volume ID seen by guests (/dev/disk/by-label): fixed prefix + digest, ISO9660 d-characters only. */
export function volumeId(layer: RenderedLayer): string {
  return `RCTX_${layer.digest.slice('sha256:'.length, 'sha256:'.length + 24).toUpperCase()}`;
}

export function imageFileName(digest: string): string {
  return `${digest.replace(/^sha256:/, '')}.iso`;
}

export async function writeLayerImage(layer: RenderedLayer, directory: string): Promise<LayerImage> {
  const target = join(directory, imageFileName(layer.digest));
  const existing = await stat(target).catch(() => undefined);
  if (existing) return { path: target, bytes: existing.size };
  await mkdir(directory, { recursive: true });
  const staging = await mkdtemp(join(tmpdir(), 'recontext-layer-'));
  try {
    for (const file of [...layer.files, manifestFile(layer)]) {
      const path = join(staging, 'root', file.path);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, file.content, { mode: file.mode });
    }
    const partial = join(directory, `.${imageFileName(layer.digest)}.partial`);
    await execFileAsync('genisoimage', ['-quiet', '-R', '-J', '-V', volumeId(layer), '-o', partial, join(staging, 'root')]);
    await rename(partial, target);
    return { path: target, bytes: (await stat(target)).size };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
