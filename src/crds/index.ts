// The three recontext resources: names, printer columns and schemas in one table. crd.ts turns
// each entry into a CustomResourceDefinition; validate.ts checks documents against it.
import type { Static, TObject } from '@sinclair/typebox';
import { ContextLayerSpec, ContextLayerStatus } from './contextlayer.js';
import { API_VERSION, GROUP, VERSION } from './kit.js';
import { MigrationPolicySpec, MigrationPolicyStatus } from './migrationpolicy.js';
import { VMContextSpec, VMContextStatus } from './vmcontext.js';

export { API_VERSION, GROUP, VERSION };

export interface PrinterColumn {
  readonly name: string;
  readonly type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  readonly jsonPath: string;
  readonly description: string;
  readonly priority?: number;
}

export interface ResourceDefinition {
  readonly kind: string;
  readonly plural: string;
  readonly singular: string;
  readonly shortNames: readonly string[];
  readonly description: string;
  readonly spec: TObject;
  readonly status: TObject;
  readonly printerColumns: readonly PrinterColumn[];
}

const READY: PrinterColumn = {
  name: 'Ready',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].status',
  description: 'Whether the resource is Ready.',
};
const AGE: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Age of the object.' };

export const CONTEXT_LAYER: ResourceDefinition = {
  kind: 'ContextLayer',
  plural: 'contextlayers',
  singular: 'contextlayer',
  shortNames: ['ctxl'],
  description:
    'A prioritized set of context files of one class (service, infrastructure, legislative, broker), delivered to VMs as a read-only ISO9660 image and merged in the guest by priority.',
  spec: ContextLayerSpec,
  status: ContextLayerStatus,
  printerColumns: [
    { name: 'Class', type: 'string', jsonPath: '.spec.class', description: 'Class of the context data.' },
    { name: 'Priority', type: 'integer', jsonPath: '.status.effectivePriority', description: 'Priority in force (spec or class default).' },
    { name: 'VMs', type: 'integer', jsonPath: '.status.renderedFor', description: 'VMs receiving the layer.' },
    READY,
    AGE,
  ],
};

export const VM_CONTEXT: ResourceDefinition = {
  kind: 'VMContext',
  plural: 'vmcontexts',
  singular: 'vmcontext',
  shortNames: ['vmctx'],
  description:
    'The context of one VM: the layers it receives. The operator keeps them attached as CD-ROMs and re-renders them when the VM migrates or a layer changes.',
  spec: VMContextSpec,
  status: VMContextStatus,
  printerColumns: [
    { name: 'VM', type: 'string', jsonPath: '.status.vm', description: 'The target VM.' },
    { name: 'Node', type: 'string', jsonPath: '.status.node', description: 'Node or host the VM runs on.' },
    READY,
    { name: 'Last-Latency-ms', type: 'integer', jsonPath: '.status.lastRecontext.totalMs', description: 'Duration of the last recontextualization (ms).' },
    { name: 'Trigger', type: 'string', jsonPath: '.status.lastRecontext.trigger', description: 'Trigger of the last recontextualization.', priority: 1 },
    AGE,
  ],
};

export const MIGRATION_POLICY: ResourceDefinition = {
  kind: 'MigrationPolicy',
  plural: 'migrationpolicies',
  singular: 'migrationpolicy',
  // KubeVirt has a cluster-scoped migrationpolicies.migrations.kubevirt.io: use
  // migrationpolicies.recontext.dev or the short name with kubectl.
  shortNames: ['rcmp'],
  description:
    'When VMs should ask to move (VM-initiated migration): Threshold, Base, Schedule or Site policy over a per-VM metric and ordered arrays of nodes. Not to be confused with KubeVirt\'s migrationpolicies.migrations.kubevirt.io.',
  spec: MigrationPolicySpec,
  status: MigrationPolicyStatus,
  printerColumns: [
    { name: 'Type', type: 'string', jsonPath: '.spec.type', description: 'Policy type.' },
    { name: 'VMs', type: 'integer', jsonPath: '.status.matchedVMs', description: 'VMs the policy applies to.' },
    { name: 'Last-Decision', type: 'string', jsonPath: '.status.lastDecision', description: 'The newest decision.' },
    { name: 'DryRun', type: 'boolean', jsonPath: '.spec.dryRun', description: 'Decisions only, no migrations.', priority: 1 },
    AGE,
  ],
};

export const RESOURCES: readonly ResourceDefinition[] = [CONTEXT_LAYER, VM_CONTEXT, MIGRATION_POLICY];

export function resourceByKind(kind: string): ResourceDefinition | undefined {
  return RESOURCES.find((r) => r.kind === kind);
}

/** The object shape the operator reads and writes (metadata as client-node types it). */
export interface KubeObject<Spec, Status> {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    finalizers?: string[];
  };
  spec: Spec;
  status?: Status;
}

export type ContextLayer = KubeObject<Static<typeof ContextLayerSpec>, Static<typeof ContextLayerStatus>>;
export type VMContext = KubeObject<Static<typeof VMContextSpec>, Static<typeof VMContextStatus>>;
export type MigrationPolicy = KubeObject<Static<typeof MigrationPolicySpec>, Static<typeof MigrationPolicyStatus>>;

export * from './contextlayer.js';
export * from './vmcontext.js';
export * from './migrationpolicy.js';
