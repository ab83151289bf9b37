// Every `recontext …` command line in the docs uses only flags its command has: the flags are read
// from the commander definitions (src/cli), so a renamed or removed flag fails here, not in a
// reader's terminal.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { program } from '../../src/cli/main.js';

const REPO = join(import.meta.dirname, '..', '..');

function markdownFiles(): string[] {
  const found = ['README.md'];
  for (const dir of ['docs', 'examples', 'charts']) {
    for (const entry of readdirSync(join(REPO, dir), { recursive: true, encoding: 'utf8' })) if (entry.endsWith('.md')) found.push(join(dir, entry));
  }
  return found;
}

/** The command a doc names (`policy simulate`, `render` …) and the flags written after it. */
function commandLines(markdown: string): { command: string[]; flags: string[]; text: string }[] {
  const code = [...markdown.matchAll(/```[a-z]*\n([\s\S]*?)```/g)].map((m) => m[1]!).join('\n') + '\n' + [...markdown.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!).join('\n');
  const lines = code.replace(/\\\n\s*/g, ' ').split('\n');
  const found: { command: string[]; flags: string[]; text: string }[] = [];
  for (const line of lines) {
    for (const match of line.matchAll(/\brecontext ((?:policy |iso )?[a-z]+)\b([^#|;&]*)/g)) {
      const flags = [...match[2]!.matchAll(/(?:^|\s)(--[a-z][a-z-]*)/g)].map((m) => m[1]!);
      found.push({ command: match[1]!.split(' '), flags, text: match[0] });
    }
  }
  return found;
}

function find(root: Command, path: readonly string[]): Command | undefined {
  let command: Command | undefined = root;
  for (const name of path) command = command?.commands.find((c) => c.name() === name);
  return command;
}

describe('flags named in the docs', () => {
  it.each(markdownFiles())('%s names only flags the commands have', (file) => {
    const root = program();
    const wrong: string[] = [];
    for (const line of commandLines(readFileSync(join(REPO, file), 'utf8'))) {
      const command = find(root, line.command);
      if (!command) continue; // prose like "recontext is …", not a command line
      const known = new Set(['--help', ...command.options.flatMap((o) => [o.long, o.negate ? o.long : undefined].filter((f): f is string => f !== undefined))]);
      for (const flag of line.flags) if (!known.has(flag)) wrong.push(`${flag} in "${line.text.trim()}"`);
    }
    expect(wrong, relative(REPO, join(REPO, file))).toEqual([]);
  });

  it('finds the command lines it checks', () => {
    const lines = markdownFiles().flatMap((f) => commandLines(readFileSync(join(REPO, f), 'utf8')));
    expect(lines.filter((l) => find(program(), l.command)).length).toBeGreaterThan(15);
    expect(lines.some((l) => l.flags.includes('--print'))).toBe(true);
    // A continued line in a block, and a flag a command does not have, as a typo in a doc would be.
    expect(commandLines('```sh\nnpx recontext render -f x \\\n    --prnt --vm y   # comment --no\n```\n')).toEqual([{ command: ['render'], flags: ['--prnt', '--vm'], text: 'recontext render -f x  --prnt --vm y   ' }]);
  });
});
