// MigrationPolicy: when a VM should ask to move — the four VM-initiated policies of the thesis
// (Lartey, ch. 3.4; docs/policies.md): Threshold (1), Base (2), Schedule (3), Site (4).
import type { Static } from '@sinclair/typebox';
import { Bool, Conditions, Duration, Enum, Int, LabelSelector, List, Num, Obj, ObservedGeneration, Optional, Str, StrMap } from './kit.js';

export const POLICY_TYPES = ['Threshold', 'Base', 'Schedule', 'Site'] as const;
export type PolicyType = (typeof POLICY_TYPES)[number];
export const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'] as const;

const ArrayName = (description: string) =>
  Str({ description, minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' });

export const Metric = Obj(
  {
    prometheus: Optional(
      Obj(
        {
          query: Str({
            description: 'PromQL instant query returning one value per VM; {{ vm.name }} and {{ vm.namespace }} are substituted.',
            minLength: 1,
            maxLength: 4096,
          }),
          address: Optional(
            Str({ description: 'Base URL of the Prometheus HTTP API; the operator flag --prometheus-url if unset.', maxLength: 2048, pattern: '^https?://' }),
          ),
        },
        { description: 'Sample from a Prometheus server.' },
      ),
    ),
    reported: Optional(
      Obj(
        { key: Str({ description: 'Name of the value the guest (or an agent) reports for the VM.', minLength: 1, maxLength: 128, pattern: '^[A-Za-z_][A-Za-z0-9_.]*$' }) },
        { description: 'Sample values reported for the VM (standalone mode, guest agents).' },
      ),
    ),
  },
  {
    description: 'Where the performance indicator comes from: exactly one of prometheus and reported.',
    'x-kubernetes-validations': [{ rule: 'has(self.prometheus) != has(self.reported)', message: 'exactly one of prometheus and reported must be set' }],
  },
);

export const PolicyArray = Obj(
  {
    name: ArrayName('Name of the array (a cluster of hosts with shared storage: live migration works inside it).'),
    nodeSelector: StrMap({ description: 'Labels of the nodes (or libvirt hosts) that form the array.', maxProperties: 16, valueMaxLength: 63 }),
    cost: Optional(Num({ description: 'Cost of running a VM here per hour, in any unit. No policy decides on it; recontext policy simulate sums it (omit it and simulate reports time only).', minimum: 0 })),
  },
  { description: 'An ordered group of nodes a VM can be moved to.' },
);

export const Window = Obj(
  {
    days: List(Enum(WEEKDAYS, { description: 'A weekday: Mon … Sun.' }), {
      description: 'Days the window applies to.',
      minItems: 1,
      maxItems: 7,
      'x-kubernetes-list-type': 'set',
    }),
    start: Str({ description: 'Start of the window, local time HH:MM.', maxLength: 5, pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$' }),
    end: Str({ description: 'End of the window, local time HH:MM (after start; 24:00 for midnight).', maxLength: 5, pattern: '^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$' }),
  },
  {
    description: 'A working window.',
    'x-kubernetes-validations': [{ rule: 'self.start < self.end', message: 'start must be before end', fieldPath: '.end' }],
  },
);

export const MigrationPolicySpec = Obj(
  {
    type: Enum(POLICY_TYPES, { description: 'Which policy: Threshold (1), Base (2), Schedule (3) or Site (4); see docs/policies.md.' }),
    vmSelector: LabelSelector('Selects the VMContexts (by their labels, same namespace) this policy applies to.'),
    metric: Optional(Metric),
    sampleInterval: Duration('How often the metric is sampled (Go duration, e.g. 30s).', '30s'),
    high: Optional(Num({ description: 'Upper threshold (X): a value at or above it counts as too slow.' })),
    highFor: Optional(Int({ description: 'Consecutive samples at or above high before the VM moves.', minimum: 1, maximum: 10000 })),
    low: Optional(Num({ description: 'Lower threshold (Y): a value at or below it counts as over-provisioned (Base, Schedule).' })),
    lowFor: Optional(Int({ description: 'Consecutive samples at or below low before the VM moves to base.', minimum: 1, maximum: 10000 })),
    arrays: List(PolicyArray, {
      description: 'Arrays in order of preference; Threshold moves to the next one in order.',
      minItems: 1,
      maxItems: 16,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
    }),
    base: Optional(ArrayName('The cheap array the VM moves to when over-provisioned or outside working hours (Base, Schedule).')),
    preferred: Optional(ArrayName('Where the VM moves from base when above high (Base, Schedule); the first array other than base if unset.')),
    schedule: Optional(
      Obj(
        {
          timeZone: Str({ description: 'IANA time zone of the windows, e.g. Europe/Stockholm (DST-aware).', minLength: 1, maxLength: 64 }),
          windows: List(Window, { description: 'Working windows; outside all of them the VM goes to base and sampling stops.', minItems: 1, maxItems: 14 }),
        },
        { description: 'Working hours (Schedule).' },
      ),
    ),
    site: Optional(
      Obj(
        {
          grade: Metric,
          bigJobGrade: Num({ description: 'A queue grade at or above this is a big job for the fast array.' }),
          home: ArrayName('The cheap home array.'),
          fast: ArrayName('The fast (pricier) array big jobs run on.'),
        },
        {
          description: 'Job-queue driven placement (Site).',
          'x-kubernetes-validations': [{ rule: 'self.home != self.fast', message: 'home and fast must be different arrays', fieldPath: '.fast' }],
        },
      ),
    ),
    cooldown: Duration('Time after a migration during which the policy requests no other (the thesis\' sleep).', '10m'),
    maxMigrationsPerHour: Int({ description: 'At most this many migrations per VM per hour.', minimum: 1, maximum: 60, default: 4 }),
    dryRun: Bool({ description: 'If true, decisions are recorded but no VM is moved.', default: false }),
  },
  {
    description: 'Desired state of a MigrationPolicy.',
    'x-kubernetes-validations': [
      { rule: "self.type == 'Site' || has(self.metric)", message: 'metric is required for Threshold, Base and Schedule', fieldPath: '.metric', reason: 'FieldValueRequired' },
      { rule: "self.type == 'Site' || (has(self.high) && has(self.highFor))", message: 'high and highFor are required for Threshold, Base and Schedule', fieldPath: '.high', reason: 'FieldValueRequired' },
      {
        rule: "!(self.type == 'Base' || self.type == 'Schedule') || (has(self.low) && has(self.lowFor) && has(self.base))",
        message: 'low, lowFor and base are required for Base and Schedule',
        fieldPath: '.low',
        reason: 'FieldValueRequired',
      },
      { rule: '!(has(self.low) && has(self.high)) || self.low < self.high', message: 'low must be less than high', fieldPath: '.low' },
      { rule: "self.type != 'Schedule' || has(self.schedule)", message: 'schedule is required for Schedule', fieldPath: '.schedule', reason: 'FieldValueRequired' },
      { rule: "self.type != 'Site' || has(self.site)", message: 'site is required for Site', fieldPath: '.site', reason: 'FieldValueRequired' },
      { rule: '!has(self.base) || self.arrays.exists(a, a.name == self.base)', message: 'base must name one of arrays', fieldPath: '.base' },
      { rule: '!has(self.preferred) || self.arrays.exists(a, a.name == self.preferred)', message: 'preferred must name one of arrays', fieldPath: '.preferred' },
      { rule: '!has(self.preferred) || !has(self.base) || self.preferred != self.base', message: 'preferred must differ from base', fieldPath: '.preferred' },
      {
        rule: '!has(self.site) || (self.arrays.exists(a, a.name == self.site.home) && self.arrays.exists(a, a.name == self.site.fast))',
        message: 'site.home and site.fast must name arrays',
        fieldPath: '.site',
      },
      { rule: "!(self.type == 'Base' || self.type == 'Schedule') || size(self.arrays) >= 2", message: 'Base and Schedule need the base array and at least one other', fieldPath: '.arrays' },
    ],
  },
);

export const Decision = Obj(
  {
    time: Str({ description: 'When the decision was taken (RFC 3339).', maxLength: 64, format: 'date-time' }),
    vm: Str({ description: 'The VM (VMContext name).', maxLength: 253 }),
    value: Optional(Num({ description: 'The sampled value the decision was based on.' })),
    reason: Str({ description: 'Why, in words (e.g. "value 0.93 >= high 0.8 for 5 samples").', maxLength: 1024 }),
    from: Optional(Str({ description: 'Array the VM was in.', maxLength: 63 })),
    to: Optional(Str({ description: 'Array the VM was asked to move to.', maxLength: 63 })),
    result: Str({ description: 'Requested, DryRun, Succeeded, Failed or Skipped (with the reason).', maxLength: 32 }),
  },
  { description: 'One decision of the policy.' },
);

export const MigrationPolicyStatus = Obj(
  {
    observedGeneration: ObservedGeneration(),
    matchedVMs: Optional(Int({ description: 'How many VMContexts the policy applies to.', minimum: 0 })),
    lastDecision: Optional(Str({ description: 'Short form of the newest decision, for kubectl get.', maxLength: 256 })),
    decisions: Optional(List(Decision, { description: 'The most recent decisions, newest first.', maxItems: 50 })),
    conditions: Optional(Conditions()),
  },
  { description: 'Observed state of a MigrationPolicy, written by the operator.' },
);

export type MigrationPolicySpec = Static<typeof MigrationPolicySpec>;
export type MigrationPolicyStatus = Static<typeof MigrationPolicyStatus>;
export type PolicyArray = Static<typeof PolicyArray>;
export type Decision = Static<typeof Decision>;
