import { createWriteStream } from 'node:fs';
import { buildIso, entriesFromDirectory } from '../../src/iso/index.js';
import { buildTree } from '../../src/iso/tree.js';
import { renderImage } from '../../src/iso/writer.js';
for (const dir of ['/tmp/isodev/ta', '/tmp/isodev/tb']) {
  for (let r = 0; r < 4; r++) {
    const t0 = performance.now();
    const entries = await entriesFromDirectory(dir);
    const t1 = performance.now();
    const image = buildIso(entries, { volumeId: 'B', timestamp: new Date(0) });
    const t2 = performance.now();
    let n = 0; for await (const c of renderImage(image.plan)) n += c.length;
    const t3 = performance.now();
    await image.write(createWriteStream('/tmp/isodev/o.iso'));
    const t4 = performance.now();
    console.log(dir, 'walk', (t1-t0).toFixed(1), 'layout', (t2-t1).toFixed(1), 'render-only', (t3-t2).toFixed(1), 'write+hash', (t4-t3).toFixed(1));
  }
}
