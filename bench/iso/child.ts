// One build, as its own process, so its peak RSS can be compared with genisoimage's and xorriso's:
// walk DIR, lay out, stream the image to OUT. Run compiled (plain node), not through a loader.
import { buildIso, entriesFromDirectory } from '../../src/iso/index.js';

const [dir, out] = process.argv.slice(2);
if (dir === undefined || out === undefined) {
  process.stderr.write('usage: child.js DIR OUT\n');
  process.exit(2);
}
const image = buildIso(await entriesFromDirectory(dir), { volumeId: 'BENCH', timestamp: new Date(0) });
await image.writeToFile(out, { sha256: false });
