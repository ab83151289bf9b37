// Working windows of the Schedule policy (thesis 3.4.4: "while time is between a and b"), in the
// policy's IANA time zone. Windows are wall-clock times on local weekdays: 08:00–17:00
// Europe/Stockholm starts at 08:00 local on both sides of a DST change (07:00Z in winter, 06:00Z in
// summer). `end` may be 24:00 (the next local midnight). Pure: the only clock is the `at` argument;
// Intl supplies the zone rules.
import { WEEKDAYS } from '../../crds/migrationpolicy.js';

export interface WorkingWindow {
  readonly days: readonly (typeof WEEKDAYS)[number][];
  readonly start: string;
  readonly end: string;
}

export interface Schedule {
  readonly timeZone: string;
  readonly windows: readonly WorkingWindow[];
}

/** An interval [start, end) in epoch ms. */
export interface Interval {
  readonly start: number;
  readonly end: number;
}

interface LocalTime {
  readonly year: number;
  readonly month: number; // 1–12
  readonly day: number;
  readonly weekday: (typeof WEEKDAYS)[number];
  /** Minutes since local midnight, with the seconds as a fraction. */
  readonly minutes: number;
}

const DAY_MS = 86_400_000;
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      weekday: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

function localTime(at: number, timeZone: string): LocalTime {
  const parts: Record<string, string> = {};
  for (const p of formatter(timeZone).formatToParts(new Date(at))) parts[p.type] = p.value;
  const seconds = Number(parts.second) + (((at % 1000) + 1000) % 1000) / 1000;
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    weekday: parts.weekday as LocalTime['weekday'],
    minutes: Number(parts.hour) * 60 + Number(parts.minute) + seconds / 60,
  };
}

/** UTC offset of the zone at `at`, in ms (local = UTC + offset), to the second. */
function offsetAt(at: number, timeZone: string): number {
  const whole = Math.floor(at / 1000) * 1000;
  const l = localTime(whole, timeZone);
  const asUtc = Date.UTC(l.year, l.month - 1, l.day, 0, 0, 0) + Math.round(l.minutes * 60) * 1000;
  return asUtc - whole;
}

/** "08:00" → 480, "24:00" → 1440. */
export function clockMinutes(text: string): number {
  const [h, m] = text.split(':');
  return Number(h) * 60 + Number(m);
}

/**
 * The instant the local wall clock of `timeZone` reads `minutes` after midnight on the local date
 * (year, month, day) — 1440 is the next midnight. An ambiguous time (the repeated hour when clocks
 * go back) is its first occurrence; a time that does not exist (the skipped hour when clocks go
 * forward) is the instant the clocks jump, the first moment the wall clock reads at least that.
 */
export function localInstant(year: number, month: number, day: number, minutes: number, timeZone: string): number {
  const naive = Date.UTC(year, month - 1, day) + minutes * 60_000;
  // The offsets in force around the date: before and after any transition of that day.
  const offsets = [...new Set([offsetAt(naive - DAY_MS / 2, timeZone), offsetAt(naive, timeZone), offsetAt(naive + DAY_MS / 2, timeZone)])];
  const valid = offsets.map((o) => naive - o).filter((t) => offsetAt(t, timeZone) === naive - t);
  if (valid.length > 0) return Math.min(...valid);
  // In a gap: the wall clock skips `minutes`. Search the jump between the candidates.
  const candidates = offsets.map((o) => naive - o);
  let lo = Math.min(...candidates);
  let hi = Math.max(...candidates);
  while (hi - lo > 1000) {
    const mid = Math.floor((lo + hi) / 2000) * 1000;
    if (mid + offsetAt(mid, timeZone) >= naive) hi = mid;
    else lo = mid;
  }
  return hi;
}

function nextLocalDate(year: number, month: number, day: number, plus: number): { year: number; month: number; day: number } {
  const d = new Date(Date.UTC(year, month - 1, day + plus));
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

/** The window occurrences (as instants) that start on the local date `plus` days after the date of `at`. */
function occurrencesOn(schedule: Schedule, at: number, plus: number): Interval[] {
  const today = localTime(at, schedule.timeZone);
  const date = nextLocalDate(today.year, today.month, today.day, plus);
  const weekday = WEEKDAYS[(new Date(Date.UTC(date.year, date.month - 1, date.day)).getUTCDay() + 6) % 7]!;
  const out: Interval[] = [];
  for (const w of schedule.windows) {
    if (!w.days.includes(weekday)) continue;
    out.push({
      start: localInstant(date.year, date.month, date.day, clockMinutes(w.start), schedule.timeZone),
      end: localInstant(date.year, date.month, date.day, clockMinutes(w.end), schedule.timeZone),
    });
  }
  return out;
}

/**
 * The working period containing `at`, or undefined outside all windows. Windows that overlap or
 * touch (Mon 00:00–24:00 and Tue 00:00–12:00) are one period: counts do not restart at their seam.
 */
export function workingPeriod(schedule: Schedule, at: number): Interval | undefined {
  // Occurrences from the local day before to the one after cover every window that can contain
  // `at`; a merged period can be longer (every day 00:00–24:00): then look a week either way.
  for (const range of [1, 8]) {
    const all: Interval[] = [];
    for (let plus = -range; plus <= range; plus++) all.push(...occurrencesOn(schedule, at, plus));
    all.sort((a, b) => a.start - b.start);
    const merged: Interval[] = [];
    for (const o of all) {
      const last = merged[merged.length - 1];
      if (last && o.start <= last.end) merged[merged.length - 1] = { start: last.start, end: Math.max(last.end, o.end) };
      else merged.push(o);
    }
    const period = merged.find((p) => p.start <= at && at < p.end);
    if (!period) return undefined;
    const reachesEdge = period.start === all[0]!.start || period.end === Math.max(...all.map((o) => o.end));
    if (!reachesEdge || range === 8) return period;
  }
  return undefined;
}

/** The first window start strictly after `at` (within the coming 8 local days; windows list at least one day). */
export function nextWindowStart(schedule: Schedule, at: number): number {
  let best = Number.POSITIVE_INFINITY;
  for (let plus = 0; plus <= 8; plus++) {
    for (const o of occurrencesOn(schedule, at, plus)) if (o.start > at && o.start < best) best = o.start;
    if (best < Number.POSITIVE_INFINITY) break;
  }
  return best;
}

/** "Mon 2026-03-30 08:00" in the zone, for reasons. */
export function formatLocal(at: number, timeZone: string): string {
  const l = localTime(at, timeZone);
  const m = Math.floor(l.minutes + 1e-9);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${l.weekday} ${l.year}-${pad(l.month)}-${pad(l.day)} ${pad(Math.floor(m / 60))}:${pad(m % 60)}`;
}
