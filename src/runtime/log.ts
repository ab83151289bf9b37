// Structured JSON logs, one object per line on stderr. Callers pass names, keys, digests and
// reasons — never file contents: rendered bytes (which may come from Secrets) have no place here.
import { realClock, type Clock } from './clock.js';
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, string | number | boolean | undefined | null | readonly string[]>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  readonly level?: Level;
  readonly write?: (line: string) => void;
  readonly clock?: Clock;
}

export function createLogger(options: LoggerOptions = {}, bound: LogFields = {}): Logger {
  const threshold = ORDER[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const clock = options.clock ?? realClock;
  const now = (): Date => new Date(clock.now());
  const log = (level: Level) => (msg: string, fields: LogFields = {}) => {
    if (ORDER[level] < threshold) return;
    write(JSON.stringify({ ts: now().toISOString(), level, msg, ...bound, ...fields }) + '\n');
  };
  return {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    child: (fields) => createLogger(options, { ...bound, ...fields }),
  };
}

/** The message of an unknown thrown value, for logs and conditions. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
