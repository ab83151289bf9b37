// The chart's Grafana dashboard and sample alert rules name only metrics and labels the operator
// really exports: every PromQL expression in charts/recontext/dashboards/recontext.json and
// charts/recontext/alerts/recontext-rules.yaml is taken apart by a small tokenizer (not a PromQL
// parser: enough for the expressions we write), and each metric name is looked up in a fresh
// OperatorMetrics registry, with its type (histogram suffixes only on histograms, rate() and
// increase() only over counters and histogram series) and its label names. A renamed metric or
// label breaks this test. promtool (Debian's prometheus package, installed by the test setup for
// the Prometheus tests) checks the rule file's syntax and runs unit tests of the subtle rules.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { OperatorMetrics } from '../../src/runtime/metrics.js';
import { hasCommand } from '../setup/system-packages.js';
import { prometheusSkipReason } from '../support/prometheus.js';
import { skipReason } from '../support/skip.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CHART = join(ROOT, 'charts', 'recontext');
const read = (...path: string[]): string => readFileSync(join(...path), 'utf8');

// ---------------------------------------------------------------------------------------------
// What the operator exports.

interface Exported {
  readonly type: string;
  readonly labels: ReadonlySet<string>;
}

const operatorMetrics = new OperatorMetrics();
const exported = new Map<string, Exported>();
for (const metric of await operatorMetrics.registry.getMetricsAsJSON()) {
  const object = operatorMetrics.registry.getSingleMetric(metric.name) as unknown as { labelNames?: readonly string[] } | undefined;
  exported.set(metric.name, { type: String(metric.type), labels: new Set(object?.labelNames ?? []) });
}
/** Our own metrics, not prom-client's default process and Node.js ones. */
const OWN = [...exported.keys()].filter((name) => !/^recontext_(process|nodejs)_/.test(name));

/** Labels Prometheus adds at scrape time (target labels, a ServiceMonitor's too), and histograms' le. */
const TARGET_LABELS = new Set(['job', 'instance', 'namespace', 'pod', 'service', 'container', 'endpoint']);

// ---------------------------------------------------------------------------------------------
// The tokenizer.

interface Use {
  /** The series name as written (…_bucket included). */
  readonly series: string;
  /** The exported metric it belongs to. */
  readonly metric: string;
  /** Label names in its own {…} selector. */
  readonly selectorLabels: readonly string[];
  /** Directly inside rate(), irate() or increase(). */
  readonly rated: boolean;
}

interface Parsed {
  readonly uses: readonly Use[];
  /** Label names in by (…), without (…), on (…), ignoring (…), group_left/right (…). */
  readonly groupingLabels: readonly string[];
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);
const IDENTIFIER = /(?<![\w.:$])[a-zA-Z_:][\w:]*/g;

/** The exported metric a series name belongs to, or why it does not belong to any. */
function resolve(series: string): { metric: string } | { problem: string } {
  const own = exported.get(series);
  if (own) return own.type === 'histogram' || own.type === 'summary' ? { problem: `${series} is a ${own.type}: use ${series}_bucket, _sum or _count` } : { metric: series };
  const suffix = /_(bucket|sum|count)$/.exec(series);
  const base = suffix ? series.slice(0, -suffix[0].length) : undefined;
  const parent = base ? exported.get(base) : undefined;
  if (!base || !parent) return { problem: `${series} is not exported by the operator` };
  if (parent.type === 'histogram' || (parent.type === 'summary' && suffix?.[1] !== 'bucket')) return { metric: base };
  return { problem: `${series}: ${base} is a ${parent.type}, it has no ${suffix?.[0]} series` };
}

function parsePromQL(expression: string): Parsed & { problems: string[] } {
  const problems: string[] = [];
  // Grafana variables: $__rate_interval and friends in ranges, $namespace in label values.
  let text = expression.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');
  const uses: Use[] = [];
  // Selectors with their metric name: name{labels} or a bare {labels}.
  const selectorLabels = (body: string) => [...body.matchAll(/([a-zA-Z_]\w*)\s*(=~|!~|!=|=)/g)].map((m) => m[1] as string);
  const bracketed: { name: string | undefined; labels: string[] }[] = [];
  text = text.replace(/([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}/g, (_all, name: string | undefined, body: string) => {
    bracketed.push({ name: name && !KEYWORDS.has(name) ? name : undefined, labels: selectorLabels(body) });
    return name ? ` ${name}@${bracketed.length - 1} ` : ' ';
  });
  const groupingLabels: string[] = [];
  text = text.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_all, _keyword, list: string) => {
    groupingLabels.push(...list.split(',').map((l) => l.trim()).filter((l) => l.length > 0));
    return ' ';
  });
  text = text.replace(/\[[^\]]*\]/g, ' ').replace(/\boffset\s+-?[\w$]+/g, ' ');
  for (const match of text.matchAll(new RegExp(`${IDENTIFIER.source}(@\\d+)?`, 'g'))) {
    const [token] = match;
    const [name, selector] = token.split('@') as [string, string | undefined];
    const after = text.slice((match.index ?? 0) + token.length);
    if (/^\s*\(/.test(after)) continue; // a function or an aggregation
    if (KEYWORDS.has(name.toLowerCase())) continue;
    const before = text.slice(0, match.index);
    const rated = /\b(rate|irate|increase)\s*\(\s*$/.test(before);
    const resolved = resolve(name);
    if ('problem' in resolved) {
      problems.push(resolved.problem);
      continue;
    }
    const labels = selector !== undefined ? (bracketed[Number(selector)]?.labels ?? []) : [];
    uses.push({ series: name, metric: resolved.metric, selectorLabels: labels, rated });
  }
  if (bracketed.some((b) => b.name === undefined)) problems.push('a selector without a metric name');
  return { uses, groupingLabels, problems };
}

/** Everything wrong with one expression: unknown metrics, misused types, unknown labels. */
function check(expression: string): string[] {
  const { uses, groupingLabels, problems } = parsePromQL(expression);
  if (uses.length === 0 && problems.length === 0) problems.push('names no metric');
  for (const use of uses) {
    const metric = exported.get(use.metric)!;
    const bucket = use.series.endsWith('_bucket') && use.metric !== use.series;
    if (use.rated && metric.type === 'gauge') problems.push(`${use.series} is a gauge: rate() and increase() need a counter`);
    if (!use.rated && metric.type === 'counter') problems.push(`${use.series} is a counter: use it in rate() or increase()`);
    for (const label of use.selectorLabels) {
      if (label === '__name__' || TARGET_LABELS.has(label) || (bucket && label === 'le')) continue;
      if (!metric.labels.has(label)) problems.push(`${use.series} has no label ${label} (it has: ${[...metric.labels].join(', ') || 'none'})`);
    }
  }
  for (const label of groupingLabels) {
    if (TARGET_LABELS.has(label)) continue;
    if (label === 'le') {
      if (!uses.every((u) => u.series.endsWith('_bucket'))) problems.push('grouping by le over series that are not _bucket');
      continue;
    }
    for (const use of uses) if (!exported.get(use.metric)!.labels.has(label)) problems.push(`grouping by ${label}, which ${use.metric} does not have`);
  }
  return problems;
}

/** promtool comes with Debian's prometheus, which the test setup installs when missing. */
function promtoolSkipReason(): string | undefined {
  if (hasCommand('promtool')) return undefined;
  return prometheusSkipReason() ?? skipReason('promtool check rules / test rules', 'promtool is not on PATH although prometheus is installed', 'reinstall Debian\'s prometheus');
}

// ---------------------------------------------------------------------------------------------
// The files.

interface Target {
  expr: string;
  refId: string;
  legendFormat?: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string | { query: string }; datasource?: { uid: string } }[] };
}
interface RuleFile {
  groups: { name: string; rules: { alert?: string; record?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }[] }[];
}

const dashboardText = read(CHART, 'dashboards', 'recontext.json');
const dashboard = JSON.parse(dashboardText) as Dashboard;
const allPanels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queries = allPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr })));
const rulesFile = join(CHART, 'alerts', 'recontext-rules.yaml');
const rules = parse(read(rulesFile)) as RuleFile;
const alerts = rules.groups.flatMap((g) => g.rules);

describe('the tokenizer', () => {
  it('finds metrics, their selector labels and grouping labels, and what is wrong with them', () => {
    const parsed = parsePromQL('histogram_quantile(0.95, sum by (phase, le) (rate(recontext_recontext_phase_duration_seconds_bucket{namespace=~"$namespace", phase!="release"}[$__rate_interval])))');
    expect(parsed.problems).toEqual([]);
    expect(parsed.uses).toEqual([{ series: 'recontext_recontext_phase_duration_seconds_bucket', metric: 'recontext_recontext_phase_duration_seconds', selectorLabels: ['namespace', 'phase'], rated: true }]);
    expect(parsed.groupingLabels).toEqual(['phase', 'le']);
    expect(check('sum by (phase, le) (rate(recontext_recontext_phase_duration_seconds_bucket[5m]))')).toEqual([]);
    expect(check('(min_over_time(recontext_workqueue_depth[15m]) > 0) unless (increase(recontext_workqueue_work_duration_seconds_count[15m]) > 0)')).toEqual([]);
    expect(check('sum(rate(recontext_recontext_latency_seconds_bucket[5m]))')).toEqual(['recontext_recontext_latency_seconds_bucket is not exported by the operator']);
    expect(check('rate(recontext_leader_bucket[5m])')).toEqual(['recontext_leader_bucket: recontext_leader is a gauge, it has no _bucket series']);
    expect(check('recontext_recontext_duration_seconds')).toEqual(['recontext_recontext_duration_seconds is a histogram: use recontext_recontext_duration_seconds_bucket, _sum or _count']);
    expect(check('rate(recontext_workqueue_depth[5m])')).toEqual(['recontext_workqueue_depth is a gauge: rate() and increase() need a counter']);
    expect(check('recontext_image_builds_total > 0')).toEqual(['recontext_image_builds_total is a counter: use it in rate() or increase()']);
    expect(check('sum by (vm) (rate(recontext_recontext_failures_total{phase="x"}[5m]))')).toEqual([
      'recontext_recontext_failures_total has no label phase (it has: reason)',
      'grouping by vm, which recontext_recontext_failures_total does not have',
    ]);
    expect(check('sum by (le) (rate(recontext_recontext_duration_seconds_count[5m]))')).toEqual(['grouping by le over series that are not _bucket']);
    expect(check('vector(1)')).toEqual(['names no metric']);
  });
});

describe('charts/recontext/dashboards/recontext.json', () => {
  it('is a Grafana dashboard (schemaVersion 39) on a ${datasource} Prometheus variable, every panel and query using it', () => {
    expect(dashboard).toMatchObject({ uid: 'recontext', title: 'recontext' });
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const datasource = dashboard.templating.list.find((v) => v.name === 'datasource');
    expect(datasource).toMatchObject({ type: 'datasource', query: 'prometheus' });
    // No hard-wired data source: importing the JSON anywhere works.
    expect(dashboardText).not.toMatch(/"uid":\s*"(?!\$\{datasource\}|-- Grafana --|recontext")/);
    for (const panel of allPanels.filter((p) => p.type !== 'row')) {
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) expect(target.datasource ?? panel.datasource, `${panel.title} ${target.refId}`).toEqual(panel.datasource);
    }
    expect(new Set(allPanels.map((p) => p.id)).size, 'panel ids are unique').toBe(allPanels.length);
    for (const panel of allPanels) expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
  });

  it('every query names metrics and labels the operator exports', () => {
    expect(queries.length).toBeGreaterThan(10);
    const problems = queries.flatMap((q) => check(q.expr).map((p) => `${q.where}: ${p}`));
    // Template variables' queries too (label_values(metric, label)).
    for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
      const query = typeof variable.query === 'string' ? variable.query : variable.query.query;
      const match = /^label_values\(\s*([^,]+?)\s*,\s*(\w+)\s*\)$/.exec(query);
      if (!match) {
        problems.push(`variable ${variable.name}: not label_values(metric, label): ${query}`);
        continue;
      }
      const [, metric, label] = match as unknown as [string, string, string];
      problems.push(...check(metric).map((p) => `variable ${variable.name}: ${p}`));
      if (!TARGET_LABELS.has(label) && !exported.get(metric)?.labels.has(label)) problems.push(`variable ${variable.name}: ${metric} has no label ${label}`);
    }
    expect(problems).toEqual([]);
  });

  it('has the panels issue #10 asks for: latency per phase and trigger, KubeVirt steps, rate, failures, queue, watches, policies, leader, builds', () => {
    const used = (series: string, label?: string) =>
      queries.some((q) => {
        const parsed = parsePromQL(q.expr);
        return parsed.uses.some((u) => u.series === series) && (label === undefined || parsed.groupingLabels.includes(label));
      });
    expect(used('recontext_recontext_phase_duration_seconds_bucket', 'phase')).toBe(true);
    expect(used('recontext_recontext_duration_seconds_bucket', 'trigger')).toBe(true);
    expect(used('recontext_recontext_duration_seconds_count')).toBe(true);
    expect(used('recontext_attach_step_duration_seconds_bucket', 'step')).toBe(true);
    expect(used('recontext_migration_to_volume_seconds_bucket', 'stage')).toBe(true);
    expect(used('recontext_recontext_failures_total', 'reason')).toBe(true);
    expect(used('recontext_workqueue_depth', 'name')).toBe(true);
    expect(used('recontext_workqueue_queue_duration_seconds_bucket', 'name')).toBe(true);
    expect(used('recontext_watch_restarts_total', 'reason')).toBe(true);
    expect(used('recontext_policy_decisions_total', 'action')).toBe(true);
    expect(used('recontext_policy_migrations_total', 'result')).toBe(true);
    expect(used('recontext_leader')).toBe(true);
    expect(used('recontext_image_builds_total')).toBe(true);
    // A metric added to the operator gets a panel too (or is listed here as deliberately left out).
    const onDashboard = new Set(queries.flatMap((q) => parsePromQL(q.expr).uses.map((u) => u.metric)));
    const leftOut: string[] = [];
    expect(OWN.filter((name) => !onDashboard.has(name) && !leftOut.includes(name)), 'operator metrics without a panel').toEqual([]);
  });
});

describe('charts/recontext/alerts/recontext-rules.yaml', () => {
  const troubleshooting = read(ROOT, 'docs', 'troubleshooting.md');
  const anchors = new Set(
    [...troubleshooting.matchAll(/^#+\s+(.+)$/gm)].map((m) =>
      (m[1] as string)
        .toLowerCase()
        .replace(/[^\w\s-]/g, '')
        .trim()
        .replace(/\s/g, '-'),
    ),
  );

  it('has the alerts issue #10 asks for, each with severity, summary, description and a runbook in docs/troubleshooting.md', () => {
    expect(alerts.map((r) => r.alert)).toEqual(
      expect.arrayContaining(['RecontextFailing', 'RecontextLatencyHigh', 'RecontextWorkQueueStuck', 'RecontextLeaderMissing', 'RecontextPolicyMigrationsFailing']),
    );
    for (const rule of alerts) {
      expect(rule.labels?.['severity'], rule.alert).toMatch(/^(warning|critical)$/);
      expect(rule.annotations?.['summary'], rule.alert).toBeTruthy();
      expect(rule.annotations?.['description'], rule.alert).toBeTruthy();
      const runbook = /^docs\/troubleshooting\.md#([\w-]+)/.exec(rule.annotations?.['runbook'] ?? '');
      expect(runbook, `${rule.alert}: runbook names docs/troubleshooting.md#…`).not.toBeNull();
      expect(anchors, `${rule.alert}: #${runbook?.[1]} is a heading of docs/troubleshooting.md`).toContain(runbook?.[1]);
    }
  });

  it('every expression names metrics and labels the operator exports', () => {
    const problems = alerts.flatMap((r) => check(r.expr).map((p) => `${r.alert ?? r.record}: ${p}`));
    expect(problems).toEqual([]);
  });

  describe.skipIf(promtoolSkipReason())('promtool', () => {
    const dir = mkdtempSync(join(tmpdir(), 'recontext-rules-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const promtool = (...args: string[]) => spawnSync('promtool', args, { encoding: 'utf8', cwd: dir });

    it('check rules: the file is valid', () => {
      const result = promtool('check', 'rules', rulesFile);
      expect(result.stdout + result.stderr).toContain('SUCCESS');
      expect(result.status).toBe(0);
    });

    it('test rules: queue stuck, leader missing and failing fire when they should, and only then', () => {
      const lbl = 'job="recontext", namespace="rc", instance="a"';
      // The same rules without annotations: promtool compares them exactly, and they are prose.
      const bare = join(dir, 'rules.yaml');
      writeFileSync(bare, JSON.stringify({ groups: rules.groups.map((g) => ({ ...g, rules: g.rules.map(({ annotations: _, ...rule }) => rule) })) }));
      const test = {
        rule_files: [bare],
        evaluation_interval: '1m',
        tests: [
          {
            interval: '1m',
            input_series: [
              // Queue "vmcontext" keeps 2 keys waiting; its workers finish nothing after minute 10: stuck
              // once 15 minutes pass without work, firing 5 minutes later. "contextlayer" keeps working.
              { series: `recontext_workqueue_depth{${lbl}, name="vmcontext"}`, values: '2x40' },
              { series: `recontext_workqueue_work_duration_seconds_count{${lbl}, name="vmcontext"}`, values: '0+1x10 10x30' },
              { series: `recontext_workqueue_depth{${lbl}, name="contextlayer"}`, values: '1x40' },
              { series: `recontext_workqueue_work_duration_seconds_count{${lbl}, name="contextlayer"}`, values: '0+1x40' },
              // Two replicas: the leader dies at minute 10 and no standby takes over.
              { series: `recontext_leader{${lbl}}`, values: '1x9 0x30' },
              { series: `recontext_leader{job="recontext", namespace="rc", instance="b"}`, values: '0x40' },
              // One VMContext turns TemplateError, many wait for CDI.
              { series: `recontext_recontext_failures_total{${lbl}, reason="TemplateError"}`, values: '0x9 1x30' },
              { series: `recontext_recontext_failures_total{${lbl}, reason="ImportInProgress"}`, values: '0+3x40' },
            ],
            alert_rule_test: [
              { eval_time: '20m', alertname: 'RecontextWorkQueueStuck', exp_alerts: [] },
              { eval_time: '31m', alertname: 'RecontextWorkQueueStuck', exp_alerts: [{ exp_labels: { severity: 'critical', job: 'recontext', namespace: 'rc', instance: 'a', name: 'vmcontext' } }] },
              { eval_time: '12m', alertname: 'RecontextLeaderMissing', exp_alerts: [] },
              { eval_time: '16m', alertname: 'RecontextLeaderMissing', exp_alerts: [{ exp_labels: { severity: 'critical', namespace: 'rc' } }] },
              { eval_time: '16m', alertname: 'RecontextFailing', exp_alerts: [{ exp_labels: { severity: 'warning', namespace: 'rc', reason: 'TemplateError' } }] },
              { eval_time: '30m', alertname: 'RecontextFailing', exp_alerts: [] },
              { eval_time: '30m', alertname: 'RecontextOperatorAbsent', exp_alerts: [] },
            ],
          },
        ],
      };
      const file = join(dir, 'test.yaml');
      writeFileSync(file, JSON.stringify(test));
      const result = promtool('test', 'rules', file);
      expect(result.stdout + result.stderr).toContain('SUCCESS');
      expect(result.status).toBe(0);
    });
  });
});

describe('charts/recontext/templates/dashboards.yaml', () => {
  const template = read(CHART, 'templates', 'dashboards.yaml');
  const values = parse(read(CHART, 'values.yaml')) as { dashboards?: { enabled: boolean; labels: Record<string, string> } };

  it('ships the dashboard as a ConfigMap labelled for the Grafana sidecar, off by default', () => {
    expect(values.dashboards).toMatchObject({ enabled: false, labels: { grafana_dashboard: '1' } });
    expect(template).toMatch(/^\{\{- if \.Values\.dashboards\.enabled \}\}/);
    expect(template).toContain('kind: ConfigMap');
    expect(template).toMatch(/with \.Values\.dashboards\.labels \}\}\s*\{\{- toYaml \. \| nindent 4 \}\}/);
    // Every file of dashboards/ goes in, unchanged (no tpl: the JSON has {{…}} legends).
    expect(template).toContain('.Files.Glob "dashboards/*.json"');
    expect(template).not.toContain('tpl');
    expect(readdirSync(join(CHART, 'dashboards'))).toEqual(['recontext.json']);
  });
});
