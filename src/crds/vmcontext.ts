// VMContext: the context of one VM — which layers it gets, and what the operator observed when it
// last delivered them (node, per-layer digests and devices, phase timings of the last recontext).
import type { Static } from '@sinclair/typebox';
import { Conditions, Enum, Int, LabelSelector, List, Obj, ObjectName, ObservedGeneration, Optional, Str } from './kit.js';

export const RECONTEXT_TRIGGERS = ['Migration', 'LayerChange', 'NodeChange'] as const;
export type RecontextTrigger = (typeof RECONTEXT_TRIGGERS)[number];

export const VMContextSpec = Obj(
  {
    target: Obj(
      {
        kubevirt: Optional(
          Obj({ name: ObjectName('Name of the KubeVirt VirtualMachine in the same namespace.') }, { description: 'A KubeVirt VirtualMachine.' }),
        ),
        libvirt: Optional(
          Obj(
            {
              domain: Str({
                description: 'Name of the libvirt domain; the operator finds it on whichever configured host runs it.',
                minLength: 1,
                maxLength: 253,
                pattern: '^[A-Za-z0-9][-A-Za-z0-9_.+]*$',
              }),
            },
            { description: 'A libvirt domain (standalone mode, without KubeVirt).' },
          ),
        ),
      },
      {
        description: 'The VM whose context this is: exactly one of kubevirt and libvirt.',
        'x-kubernetes-validations': [{ rule: 'has(self.kubevirt) != has(self.libvirt)', message: 'exactly one of kubevirt and libvirt must be set' }],
      },
    ),
    layers: Optional(
      List(Obj({ name: ObjectName('Name of a ContextLayer in the same namespace.') }, { description: 'A reference to a ContextLayer.' }), {
        description: 'ContextLayers this VM receives by name.',
        maxItems: 32,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['name'],
      }),
    ),
    layerSelector: Optional(LabelSelector('Selects further ContextLayers (same namespace) by their labels.')),
    recontextOn: Optional(
      List(Enum(RECONTEXT_TRIGGERS, { description: 'A trigger: Migration, LayerChange or NodeChange.' }), {
        description: 'What makes the operator re-render and swap layers. Default: all of Migration, LayerChange, NodeChange.',
        maxItems: 3,
        'x-kubernetes-list-type': 'set',
        default: [...RECONTEXT_TRIGGERS],
      }),
    ),
  },
  { description: 'Desired state of a VMContext.' },
);

const Millis = (description: string) => Optional(Int({ description, minimum: 0, format: 'int64' }));

export const LayerStatus = Obj(
  {
    name: ObjectName('Name of the ContextLayer.'),
    class: Str({ description: 'Class of the layer.', maxLength: 32 }),
    priority: Int({ description: 'Priority in force for the layer.', minimum: 0, maximum: 1000 }),
    digest: Str({ description: 'Content digest (sha256:…) of the image the VM should have; it names the image.', maxLength: 80 }),
    bytes: Optional(Int({ description: 'Size of the image in bytes.', minimum: 0, format: 'int64' })),
    device: Optional(Str({ description: 'Device or volume carrying the image on the VM (libvirt target dev, KubeVirt volume name).', maxLength: 253 })),
    attachedAt: Optional(Str({ description: 'When this digest was attached to the VM (RFC 3339).', maxLength: 64, format: 'date-time' })),
  },
  { description: 'One layer as delivered to the VM.' },
);

export const VMContextStatus = Obj(
  {
    observedGeneration: ObservedGeneration(),
    vm: Optional(Str({ description: 'The target VM as the operator resolved it (namespace/name or domain).', maxLength: 512 })),
    node: Optional(Str({ description: 'The node or libvirt host the VM runs on.', maxLength: 253 })),
    layers: Optional(
      List(LayerStatus, {
        description: 'Layers of the VM, highest priority first.',
        maxItems: 64,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['name'],
      }),
    ),
    lastRecontext: Optional(
      Obj(
        {
          trigger: Str({ description: 'What caused it: Migration, LayerChange, NodeChange or Initial.', maxLength: 32 }),
          startedAt: Str({ description: 'When it started (RFC 3339).', maxLength: 64, format: 'date-time' }),
          phasesMs: Obj(
            {
              resolve: Millis('Finding the VM, its node and layers (ms).'),
              detach: Millis('Identifying the devices to replace (ms).'),
              build: Millis('Rendering files and writing images (ms).'),
              attach: Millis('Putting the new images on the VM (ms): the guest can read them from then on.'),
            },
            { description: "Duration of each of the paper's four phases, in milliseconds." },
          ),
          totalMs: Int({ description: 'Total duration of the four phases in milliseconds.', minimum: 0, format: 'int64' }),
          releaseMs: Millis('Releasing the replaced images after the new ones were in place (ms); not part of totalMs.'),
          attachStepsMs: Optional(
            Obj(
              {
                import: Millis('KubeVirt: the DataVolumes importing the new images (ms).'),
                apply: Millis("KubeVirt: writing the new volumes into the VirtualMachine's spec (ms)."),
                ready: Millis('KubeVirt: from the spec change to the VMI reporting every new volume Ready (ms).'),
              },
              { description: 'Steps of the attach phase, for drivers that have several.' },
            ),
          ),
          sinceMigrationMs: Optional(
            Obj(
              {
                volumeInSpec: Millis("From the migration's completion (the platform's timestamp, whole seconds) to the new volumes being in the VM's spec (ms)."),
                volumeReady: Millis("From the migration's completion to the VMI reporting the new volumes Ready (ms)."),
              },
              { description: 'After a migration: how long the VM ran with its old context on the new node.' },
            ),
          ),
        },
        { description: 'The last recontextualization of the VM.' },
      ),
    ),
    lastMigrationId: Optional(Str({ description: 'Identifier of the last migration handled (KubeVirt migrationUid or libvirt job).', maxLength: 128 })),
    conditions: Optional(Conditions()),
  },
  { description: 'Observed state of a VMContext, written by the operator.' },
);

export type VMContextSpec = Static<typeof VMContextSpec>;
export type VMContextStatus = Static<typeof VMContextStatus>;
export type LayerStatus = Static<typeof LayerStatus>;
