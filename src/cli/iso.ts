// `recontext iso build DIR -o FILE`: the image writer of src/iso as a command, for building and
// inspecting context images by hand. Prints the sha256 of the image it wrote.
import { randomBytes } from 'node:crypto';
import { rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { buildIso, entriesFromDirectory, toVolumeId } from '../iso/index.js';

export function isoCommand(): Command {
  // exitOverride before .command(): subcommands inherit it, so --help and usage errors reach main().
  const iso = new Command('iso').description('Build ISO9660 context images (Rock Ridge + Joliet, deterministic).').exitOverride().showHelpAfterError();
  iso
    .command('build')
    .description('Build a deterministic ISO9660 image (Rock Ridge + Joliet) from a directory and print its sha256.')
    .argument('<dir>', 'directory whose contents become the image root (symlinks are kept, not followed)')
    .requiredOption('-o, --output <file>', 'image file to write (written to a temp file, then renamed into place)')
    .option('--label <label>', 'volume label, case-preserving, ≤ 16 characters (Joliet; also the ISO9660 volume id unless --volume-id is given)')
    .option('--volume-id <id>', 'ISO9660 volume id: 1–32 of A–Z 0–9 _ (default: derived from --label, else CONTEXT)')
    .addOption(
      new Option('--timestamp <time>', 'the one timestamp stored in the image: ISO 8601 or seconds since the epoch')
        .env('SOURCE_DATE_EPOCH')
        .default(new Date(0), '1970-01-01T00:00:00Z, so rebuilds are byte-identical')
        .argParser(parseTimestamp),
    )
    .addHelpText(
      'after',
      `
The same directory contents and options always give the same bytes: names are sorted,
owners are 0, and every time in the image is --timestamp (or $SOURCE_DATE_EPOCH).
Names longer than 64 characters are truncated in the Joliet tree only; Rock Ridge
keeps them (up to 255 bytes). Files must be smaller than 4 GiB.

Examples:
  recontext iso build ./layer -o layer.iso --label site-eu1
  SOURCE_DATE_EPOCH=1700000000 recontext iso build ./layer -o layer.iso`,
    )
    .action(async (dir: string, options: { output: string; label?: string; volumeId?: string; timestamp: Date }) => {
      const entries = await entriesFromDirectory(dir);
      const label = options.label ?? options.volumeId ?? 'CONTEXT';
      const image = buildIso(entries, {
        volumeId: options.volumeId ?? toVolumeId(label),
        label,
        timestamp: options.timestamp,
      });
      const temp = join(dirname(options.output), `.${basename(options.output)}.${randomBytes(6).toString('hex')}.tmp`);
      try {
        const result = await image.writeToFile(temp, { exclusive: true });
        await rename(temp, options.output);
        process.stdout.write(`${result.sha256 ?? ''}\n`);
      } catch (error: unknown) {
        await unlink(temp).catch(() => undefined);
        throw error;
      }
    });
  return iso;
}

function parseTimestamp(value: string): Date {
  const date = /^\d+$/.test(value) ? new Date(Number(value) * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) throw new InvalidArgumentError('expected ISO 8601 (2024-05-06T07:08:09Z) or seconds since the epoch');
  return date;
}
