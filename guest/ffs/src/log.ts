// JSON-lines logging to stderr, the format the operator uses: {ts, level, msg, ...fields}.
export type LogFields = Record<string, unknown>;

export interface Logger {
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export function jsonLogger(write: (line: string) => void = (line) => process.stderr.write(line), now: () => Date = () => new Date()): Logger {
  const emit = (level: string) => (msg: string, fields: LogFields = {}) => write(JSON.stringify({ ts: now().toISOString(), level, msg, ...fields }) + '\n');
  return { info: emit('info'), warn: emit('warn'), error: emit('error') };
}

/** A logger that drops everything (library default). */
export const silentLogger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };
