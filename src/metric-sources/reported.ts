// ReportedSource: values pushed for a VM by its guest, an agent or a file (standalone mode, or a
// cluster without Prometheus). An in-memory store of the latest value per VM and key, with its
// time; a reading older than maxAgeMs is NoData ("stale"), never the old value.
//
// The wire form (HTTP body or file) is a small JSON object, parsed and validated by parseReport():
//   {"namespace": "ns", "name": "vm-a", "key": "queue_wait_seconds", "value": 12.5, "time": "2026-11-23T14:00:00Z"}
// time is optional (the time of arrival otherwise); a file may hold one object or a list.
import { MetricError, type Metric, type MetricReading, type MetricSource, type VMIdentity } from './source.js';
import { realClock, type Clock } from '../runtime/clock.js';

/** As the CRD's metric.reported.key. */
export const REPORT_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_.]*$/;
const KEY_MAX = 128;
/**
 * The VM's name as the policy controller identifies it: a KubeVirt VM name (DNS-1123) or, in
 * standalone mode, a libvirt domain name (almost any text). So only what no name holds is refused:
 * control characters and '/'. Namespaces are Kubernetes namespaces (DNS-1123 label).
 */
const NAME_PATTERN = /^[^\u0000-\u001f\u007f/]+$/;
const NAMESPACE_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A report that does not validate (the HTTP endpoint answers 400 with the message). */
export class ReportError extends Error {
  override readonly name = 'ReportError';
}

export interface Report {
  readonly vm: VMIdentity;
  readonly key: string;
  readonly value: number;
  /** Epoch ms, when the report carried a time. */
  readonly at?: number;
}

export interface ReportedSourceOptions {
  /** Older readings are NoData (stale). Default 5 minutes. */
  readonly maxAgeMs?: number;
  readonly clock?: Clock;
}

interface Entry {
  readonly value: number;
  readonly at: number;
}

export class ReportedSource implements MetricSource {
  private readonly maxAgeMs: number;
  private readonly now: () => number;
  /** namespace/name → key → latest entry. */
  private readonly values = new Map<string, Map<string, Entry>>();

  constructor(options: ReportedSourceOptions = {}) {
    this.maxAgeMs = options.maxAgeMs ?? 5 * 60_000;
    const clock = options.clock ?? realClock;
    this.now = () => clock.now();
  }

  /**
   * Records a value for the VM (validated as parseReport does; throws ReportError). The latest
   * time wins: a report older than the one held is ignored (returns false).
   */
  report(vm: VMIdentity, key: string, value: number, at?: number): boolean {
    validate(vm, key, value, at);
    const id = vmKey(vm);
    let keys = this.values.get(id);
    if (!keys) {
      keys = new Map();
      this.values.set(id, keys);
    }
    const time = at ?? this.now();
    const held = keys.get(key);
    if (held && held.at > time) return false;
    keys.set(key, { value, at: time });
    return true;
  }

  /** Records every report of a body (one object or a list, as parseReports reads it); how many were newer than what was held. */
  applyAll(body: string): number {
    return parseReports(body).filter((report) => this.apply(report)).length;
  }

  /** Records a parsed report (parseReport / parseReports). */
  apply(report: Report): boolean {
    return this.report(report.vm, report.key, report.value, report.at);
  }

  /** Drops everything held for the VM (it was deleted). */
  forget(vm: VMIdentity): void {
    this.values.delete(vmKey(vm));
  }

  read(metric: Metric, vm: VMIdentity, signal: AbortSignal): Promise<MetricReading> {
    try {
      signal.throwIfAborted();
    } catch (error: unknown) {
      return Promise.reject(error);
    }
    const key = metric.reported?.key;
    if (key === undefined) return Promise.reject(new MetricError('NotConfigured', 'the metric is not a reported value'));
    const entry = this.values.get(vmKey(vm))?.get(key);
    if (!entry) return Promise.reject(new MetricError('NoData', `nothing reported for ${vmKey(vm)} under the key ${key}`));
    const age = this.now() - entry.at;
    if (age > this.maxAgeMs) {
      return Promise.reject(
        new MetricError('NoData', `stale: ${key} for ${vmKey(vm)} was last reported ${Math.round(age / 1000)} s ago (at most ${Math.round(this.maxAgeMs / 1000)} s)`),
      );
    }
    return Promise.resolve({ at: entry.at, value: entry.value });
  }
}

/** Parses and validates one report (a JSON text or an already parsed value). Throws ReportError. */
export function parseReport(input: string | unknown): Report {
  return toReport(typeof input === 'string' ? parseJson(input) : input, '');
}

/** One report or a list of them (a file, a batch POST). Throws ReportError naming the item. */
export function parseReports(input: string | unknown): Report[] {
  const parsed = typeof input === 'string' ? parseJson(input) : input;
  if (Array.isArray(parsed)) return parsed.map((item, i) => toReport(item, `item ${i}: `));
  return [toReport(parsed, '')];
}

const FIELDS = new Set(['namespace', 'name', 'key', 'value', 'time']);

function toReport(value: unknown, where: string): Report {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ReportError(`${where}a report is a JSON object {"namespace","name","key","value"}`);
  const record = value as Record<string, unknown>;
  const unknown = Object.keys(record).filter((k) => !FIELDS.has(k));
  if (unknown.length > 0) throw new ReportError(`${where}unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}`);
  for (const field of ['namespace', 'name', 'key'] as const) {
    if (typeof record[field] !== 'string') throw new ReportError(`${where}${field} must be a string`);
  }
  let at: number | undefined;
  if (record['time'] !== undefined) {
    const time = record['time'];
    at = typeof time === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(time) ? Date.parse(time) : NaN;
    if (!Number.isFinite(at)) throw new ReportError(`${where}time must be an RFC 3339 time such as 2026-01-02T15:04:05Z`);
  }
  const vm = { namespace: record['namespace'] as string, name: record['name'] as string };
  const key = record['key'] as string;
  try {
    validate(vm, key, record['value'], at);
  } catch (error: unknown) {
    if (error instanceof ReportError) throw new ReportError(`${where}${error.message}`);
    throw error;
  }
  return { vm, key, value: record['value'] as number, ...(at === undefined ? {} : { at }) };
}

function validate(vm: VMIdentity, key: string, value: unknown, at: number | undefined): asserts value is number {
  if (vm.namespace.length > 63 || !NAMESPACE_PATTERN.test(vm.namespace)) throw new ReportError(`namespace ${JSON.stringify(vm.namespace)} is not a Kubernetes namespace name`);
  if (vm.name.length > 253 || !NAME_PATTERN.test(vm.name)) throw new ReportError(`name ${JSON.stringify(vm.name)} is not a VM name (1 to 253 characters, no control characters or /)`);
  if (key.length > KEY_MAX || !REPORT_KEY_PATTERN.test(key)) throw new ReportError(`key ${JSON.stringify(key)} must match ${REPORT_KEY_PATTERN.source} (at most ${KEY_MAX} characters)`);
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new ReportError(`value must be a finite number, not ${typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? String(value))}`);
  if (at !== undefined && !Number.isFinite(at)) throw new ReportError('time must be a finite epoch time');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error: unknown) {
    throw new ReportError(`not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function vmKey(vm: VMIdentity): string {
  return `${vm.namespace}/${vm.name}`;
}
