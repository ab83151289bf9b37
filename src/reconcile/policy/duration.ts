// Go durations as the CRD accepts them (src/crds/kit.ts DURATION_PATTERN: one or more
// <number><unit> with unit ms, s, m or h, e.g. "30s", "1m30s", "1.5h") → milliseconds.
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const WHOLE = /^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/;
const PART = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;

/** "1m30s" → 90000. Throws on anything the CRD's pattern rejects. Fractions of a millisecond are rounded. */
export function parseDuration(text: string): number {
  if (!WHOLE.test(text)) throw new Error(`invalid duration ${JSON.stringify(text)}: expected a Go duration such as 30s, 1m30s, 10m or 1h`);
  let total = 0;
  for (const match of text.matchAll(PART)) total += Number(match[1]) * UNIT_MS[match[2]!]!;
  return Math.round(total);
}

/** 90000 → "1m30s", 0 → "0s"; for reasons, so they read like the spec's own durations (whole seconds from 1s up). */
export function formatDuration(ms: number): string {
  if (ms <= 0) return '0s';
  let rest = ms >= 1000 ? Math.round(ms / 1000) * 1000 : Math.round(ms);
  const parts: string[] = [];
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n}${unit}`);
    rest -= n * size;
  }
  if (rest > 0) parts.push(`${rest}ms`);
  return parts.join('');
}
