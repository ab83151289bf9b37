// File identifiers of the two directory hierarchies. The plain ISO9660 tree gets ECMA-119 level 2
// identifiers (d-characters, ≤ 30 + ";1"); Joliet gets UCS-2 names of ≤ 64 characters. Real names
// live in Rock Ridge NM, so these only matter to readers without Rock Ridge: names that collide after
// mapping are mangled deterministically (a numeric suffix in input order), never dropped.

/** ECMA-119 7.5.1 level 2: file name + extension ≤ 30 characters. */
const ISO_FILE_CHARS = 30;
/** ECMA-119 7.6.3: directory identifiers ≤ 31 characters. */
const ISO_DIR_CHARS = 31;
const ISO_EXT_CHARS = 8;
/** Joliet 1995: identifiers of up to 64 UCS-2 characters. */
export const JOLIET_MAX_CHARS = 64;

export interface NameSpec {
  readonly name: string;
  readonly isDir: boolean;
}

/** ISO9660 identifiers for the children of one directory, in the order given (byte order of real names). */
export function isoIdentifiers(children: readonly NameSpec[]): string[] {
  const candidates = children.map((c) => isoCandidate(c.name, c.isDir));
  return disambiguate(candidates, (c, n) => {
    const suffix = `_${n}`;
    const room = (c.ext === undefined ? ISO_DIR_CHARS : ISO_FILE_CHARS - c.ext.length) - suffix.length;
    return { base: c.base.slice(0, room) + suffix, ext: c.ext };
  }, isoText);
}

/** Joliet identifiers (as strings; encode with utf16be) for the children of one directory. */
export function jolietIdentifiers(children: readonly NameSpec[]): string[] {
  const candidates = children.map((c) => jolietCandidate(c.name, c.isDir));
  return disambiguate(candidates, (c, n) => {
    const suffix = `~${n}`;
    const room = JOLIET_MAX_CHARS - suffix.length - (c.ext === undefined ? 0 : c.ext.length + 1);
    return { base: truncateUtf16(c.base, room) + suffix, ext: c.ext };
  }, jolietText);
}

interface Candidate {
  readonly base: string;
  /** undefined for directories (no separator, no version). */
  readonly ext: string | undefined;
}

function toD(text: string): string {
  // ASCII (nearly every name): map each unit in one pass. Anything else takes the Unicode-aware
  // path, since upper-casing can change a string's length ('ß' → 'SS') or yield ASCII ('ı' → 'I').
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0x80) return text.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
    out += D_CHARACTER[unit] as string;
  }
  return out;
}

/** ASCII → d-character: a–z upper-cased, A–Z 0–9 _ kept, anything else '_'. */
const D_CHARACTER: readonly string[] = Array.from({ length: 0x80 }, (_, unit) => {
  const char = String.fromCharCode(unit).toUpperCase();
  return /^[A-Z0-9_]$/.test(char) ? char : '_';
});

function isoCandidate(name: string, isDir: boolean): Candidate {
  if (isDir) return { base: toD(name).slice(0, ISO_DIR_CHARS), ext: undefined };
  const dot = name.lastIndexOf('.');
  const rawBase = dot > 0 ? name.slice(0, dot) : name;
  const ext = dot > 0 ? toD(name.slice(dot + 1)).slice(0, ISO_EXT_CHARS) : '';
  const base = toD(rawBase).slice(0, ISO_FILE_CHARS - ext.length);
  return { base, ext };
}

function isoText(c: Candidate): string {
  return c.ext === undefined ? c.base : `${c.base}.${c.ext};1`;
}

/** Joliet forbids * / : ; ? \ and control characters (Joliet spec §3.2). */
function jolietCandidate(name: string, isDir: boolean): Candidate {
  const clean = name.replace(/[\u0000-\u001f*/:;?\\]/g, '_');
  if (clean.length <= JOLIET_MAX_CHARS) return { base: clean, ext: isDir ? undefined : '' };
  const dot = clean.lastIndexOf('.');
  // Keep a short extension when truncating so Windows still knows the file type.
  if (!isDir && dot > 0 && clean.length - dot - 1 <= 8) {
    const ext = clean.slice(dot + 1);
    return { base: truncateUtf16(clean.slice(0, dot), JOLIET_MAX_CHARS - ext.length - 1), ext };
  }
  return { base: truncateUtf16(clean, JOLIET_MAX_CHARS), ext: isDir ? undefined : '' };
}

function jolietText(c: Candidate): string {
  return c.ext === undefined || c.ext === '' ? c.base : `${c.base}.${c.ext}`;
}

/**
 * The first child with a given identifier keeps it; later ones get suffix 1, 2, … — skipping any
 * identifier already taken — so the outcome depends only on the (sorted) input.
 */
function disambiguate(candidates: readonly Candidate[], withSuffix: (c: Candidate, n: number) => Candidate, text: (c: Candidate) => string): string[] {
  // Exact comparison: ISO identifiers are upper case already; Joliet keeps case (Linux shows it verbatim).
  const taken = new Set<string>();
  // Needed only once two candidates collide, which is rare: built then.
  let wanted: Set<string> | undefined;
  return candidates.map((candidate) => {
    let id = text(candidate);
    if (taken.has(id)) {
      wanted ??= new Set(candidates.map(text));
      for (let n = 1; ; n++) {
        const next = text(withSuffix(candidate, n));
        if (!taken.has(next) && !wanted.has(next)) {
          id = next;
          break;
        }
      }
    }
    taken.add(id);
    return id;
  });
}

/** Truncates to `units` UTF-16 code units without splitting a surrogate pair. */
function truncateUtf16(text: string, units: number): string {
  if (text.length <= units) return text;
  const code = text.charCodeAt(units - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? units - 1 : units);
}

/**
 * ECMA-119 9.3: records sorted by name then extension, each padded with spaces, then version
 * (descending; all are 1 here). Joliet identifiers are sorted by their UCS-2 code units.
 */
export function compareIsoIdentifiers(a: string, b: string): number {
  const aEnd = a.endsWith(';1') ? a.length - 2 : a.length;
  const bEnd = b.endsWith(';1') ? b.length - 2 : b.length;
  const aDot = a.lastIndexOf('.', aEnd - 1);
  const bDot = b.lastIndexOf('.', bEnd - 1);
  return (
    comparePadded(a, 0, aDot < 0 ? aEnd : aDot, b, 0, bDot < 0 ? bEnd : bDot) ||
    comparePadded(a, aDot < 0 ? aEnd : aDot + 1, aEnd, b, bDot < 0 ? bEnd : bDot + 1, bEnd)
  );
}

/** Compares a[aFrom, aTo) with b[bFrom, bTo) as if the shorter were padded with spaces (0x20), without building the padding. */
function comparePadded(a: string, aFrom: number, aTo: number, b: string, bFrom: number, bTo: number): number {
  const width = Math.max(aTo - aFrom, bTo - bFrom);
  for (let i = 0; i < width; i++) {
    const ca = aFrom + i < aTo ? a.charCodeAt(aFrom + i) : 0x20;
    const cb = bFrom + i < bTo ? b.charCodeAt(bFrom + i) : 0x20;
    if (ca !== cb) return ca < cb ? -1 : 1;
  }
  return 0;
}
