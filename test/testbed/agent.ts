// Reading what the test guest's agent (guest/ctxagent.c) reports on its console.
import type { ConsoleMatch, Testbed } from './index.js';

export interface GuestRead extends ConsoleMatch {
  /** The guest's drive the file was read from (sr0, sr1 …). */
  readonly drive: string;
  readonly content: string;
}

/**
 * Waits until the guest reports file `path` (relative to a medium's root) with content matching
 * `pattern`, at or after console offset `from`; earlier versions of the file are skipped.
 */
export async function guestReads(tb: Pick<Testbed, 'waitForConsole'>, domain: string, path: string, pattern: RegExp, from: number, timeoutMs = 60_000): Promise<GuestRead> {
  const escaped = path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await tb.waitForConsole(domain, new RegExp(`CTX FILE (sr\\d+) ${escaped} \\d+ (\\S+)`), Math.max(1, deadline - Date.now()), from);
    const content = Buffer.from(found.match[2]!, 'base64').toString('utf8');
    if (pattern.test(content)) return { ...found, drive: found.match[1]!, content };
    from = found.offset;
  }
}
