// ContextLayer: one prioritized set of context files of one class (paper: service,
// infrastructure, legislative, broker). Rendered into one ISO9660 image per distinct content.
import type { Static } from '@sinclair/typebox';
import {
  Bool,
  Conditions,
  Enum,
  Int,
  KeyRef,
  LabelSelector,
  List,
  Obj,
  ObjectName,
  ObservedGeneration,
  Optional,
  Str,
  StrMap,
  type CelRule,
} from './kit.js';

export const LAYER_CLASSES = ['service', 'infrastructure', 'legislative', 'broker'] as const;
export type LayerClass = (typeof LAYER_CLASSES)[number];

/**
 * Priority a layer gets when spec.priority is not set. Higher wins on overlapping paths. The
 * paper lets infrastructure data override service data; legislation overrides both; a broker's
 * data sits between the service's defaults and the site's facts.
 */
export const DEFAULT_PRIORITY: Readonly<Record<LayerClass, number>> = {
  service: 100,
  broker: 200,
  infrastructure: 300,
  legislative: 400,
};

export const MAX_FILE_CONTENT_BYTES = 256 * 1024;
export const MAX_FILES_PER_LAYER = 256;
export const MAX_PATH_LENGTH = 1024;
/**
 * The directory of every image that carries the layer's metadata: the manifest and the hooks the
 * operator writes, the guest agent reads. The guest agent defines the same names in its own
 * language (guest/agent/internal/layer/layer.go): they must agree, and
 * test/lint/image-format.test.ts compares them.
 */
export const RESERVED_DIRECTORY = '.recontext';
export const MANIFEST_PATH = `${RESERVED_DIRECTORY}/manifest.json`;
export const HOOKS_PATH = `${RESERVED_DIRECTORY}/hooks.json`;

/** Rules that make a path relative and normalized; shared by file paths and source directories. */
export const PATH_RULES: readonly CelRule[] = [
  { rule: "!self.startsWith('/')", message: 'must be a relative path (no leading /)' },
  { rule: "!self.endsWith('/')", message: 'must not end with /' },
  { rule: "!self.contains('//')", message: 'must not contain empty segments (//)' },
  { rule: "!self.matches('(^|/)[.][.]?(/|$)')", message: "must be normalized: no '.' or '..' segments" },
  { rule: "!self.contains('\\\\')", message: 'must not contain backslashes' },
  { rule: "!self.matches('[\\\\x00-\\\\x1f\\\\x7f]')", message: 'must not contain control characters' },
  { rule: "!self.matches('[^/]{256}')", message: 'each path segment must be at most 255 bytes' },
  {
    rule: `self != '${RESERVED_DIRECTORY}' && !self.startsWith('${RESERVED_DIRECTORY}/')`,
    message: `${RESERVED_DIRECTORY}/ is reserved for the image manifest`,
  },
];

function RelativePath(description: string) {
  return Str({ description, minLength: 1, maxLength: MAX_PATH_LENGTH, 'x-kubernetes-validations': PATH_RULES });
}

const FileMode = Int({
  description: 'Permission bits of the file in the image (0-0777). YAML 1.1 octal like 0644 works, as with kubectl. Default 0644 (420).',
  minimum: 0,
  maximum: 0o777,
});

export const ContentFrom = Obj(
  {
    configMapKeyRef: Optional(KeyRef('ConfigMap')),
    secretKeyRef: Optional(KeyRef('Secret')),
  },
  {
    description: 'Takes the file content from a ConfigMap or Secret key in the same namespace; edits re-render the layer.',
    'x-kubernetes-validations': [
      { rule: 'has(self.configMapKeyRef) != has(self.secretKeyRef)', message: 'exactly one of configMapKeyRef and secretKeyRef must be set' },
    ],
  },
);

export const LayerFile = Obj(
  {
    path: RelativePath('Path of the file inside the layer, relative and normalized (e.g. etc/glusterfs/client.vol).'),
    content: Optional(Str({ description: 'Inline file content (UTF-8).', maxLength: MAX_FILE_CONTENT_BYTES })),
    contentFrom: Optional(ContentFrom),
    mode: Optional(FileMode),
    template: Optional(
      Bool({
        description:
          'If true, the content is a template rendered for the VM and the node it runs on ({{ node.zone }}, {{ values.cache }}); see docs/templates.md.',
        default: false,
      }),
    ),
  },
  {
    description: 'One file of the layer.',
    'x-kubernetes-validations': [
      { rule: 'has(self.content) != has(self.contentFrom)', message: 'exactly one of content and contentFrom must be set' },
    ],
  },
);

export const LayerSource = Obj(
  {
    configMap: Optional(ObjectName('Name of a ConfigMap in the same namespace; each key becomes a file.')),
    secret: Optional(ObjectName('Name of a Secret in the same namespace; each key becomes a file (mode 0600 unless set).')),
    directory: Optional(RelativePath('Directory inside the layer the keys are written to; the layer root if unset.')),
    mode: Optional(FileMode),
    optional: Optional(Bool({ description: 'If true, a missing ConfigMap or Secret contributes no files instead of failing the layer.', default: false })),
  },
  {
    description: 'Every key of a ConfigMap or Secret as a file.',
    'x-kubernetes-validations': [{ rule: 'has(self.configMap) != has(self.secret)', message: 'exactly one of configMap and secret must be set' }],
  },
);

export const LayerVariant = Obj(
  {
    name: Str({ description: 'Name of the variant (a site, zone or provider), unique in the layer.', minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' }),
    nodeSelector: StrMap({
      description: 'Node labels that must all match for this variant to apply (e.g. topology.kubernetes.io/zone: zone-a).',
      maxProperties: 16,
      valueMaxLength: 63,
    }),
    values: StrMap({ description: 'Template values of this variant; they override spec.values.', maxProperties: 64, valueMaxLength: 4096 }),
  },
  { description: 'Template values for the nodes a selector matches. The first matching variant applies.' },
);

const SIGNALS = ['HUP', 'INT', 'QUIT', 'USR1', 'USR2', 'TERM', 'CONT', 'WINCH'] as const;

export const LayerHook = Obj(
  {
    name: Str({ description: 'Name of the hook; the highest-priority layer defining a name decides (replace or disable a lower layer\'s hook).', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._-]+$' }),
    paths: Optional(
      List(Str({ description: 'A path in the merged view (etc/glusterfs/); it covers everything under it. / is everything.', minLength: 1, maxLength: MAX_PATH_LENGTH }), {
        description: 'The hook runs when anything under these paths changes in the guest\'s merged view.',
        maxItems: 16,
      }),
    ),
    run: Optional(
      List(Str({ description: 'One argument.', minLength: 1, maxLength: 4096 }), {
        description: "Command to run, as argv (no shell; the first element an absolute path). Gets RECONTEXT_CHANGED_PATHS (one per line) and RECONTEXT_MOUNTPOINT.",
        minItems: 1,
        maxItems: 64,
        'x-kubernetes-validations': [{ rule: "self[0].startsWith('/')", message: 'the command must be an absolute path' }],
      }),
    ),
    signal: Optional(
      Obj(
        {
          name: Enum(SIGNALS, { description: 'Signal to send.' }),
          pidfile: Str({ description: 'Absolute path of the pidfile of the process to signal.', minLength: 2, maxLength: 4096, pattern: '^/' }),
        },
        { description: 'Send a signal to the process whose id is in the pidfile.' },
      ),
    ),
    restart: Optional(Str({ description: 'A systemd unit to restart (systemctl restart).', minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9:_.@\\-]+$' })),
    debounceMs: Optional(Int({ description: 'Changes within this time make one run. Default 100.', minimum: 0, maximum: 60_000 })),
    timeoutMs: Optional(Int({ description: 'A run is killed after this long. Default 60000.', minimum: 1, maximum: 3_600_000 })),
    appendPaths: Optional(Bool({ description: 'Append the changed paths to the run command\'s arguments too.', default: false })),
    disabled: Optional(Bool({ description: 'Switch off a lower-priority layer\'s hook of this name.', default: false })),
  },
  {
    description: 'What to do in the guest when files of the merged context change (run by the guest agent, guest/agent, written into the image as .recontext/hooks.json).',
    'x-kubernetes-validations': [
      {
        rule: "has(self.disabled) && self.disabled ? !has(self.run) && !has(self.signal) && !has(self.restart) : (has(self.run) ? 1 : 0) + (has(self.signal) ? 1 : 0) + (has(self.restart) ? 1 : 0) == 1",
        message: 'exactly one of run, signal and restart must be set (none when disabled)',
      },
      { rule: '(has(self.disabled) && self.disabled) || (has(self.paths) && size(self.paths) > 0)', message: 'paths must name at least one path' },
    ],
  },
);

export const ContextLayerSpec = Obj(
  {
    class: Enum(LAYER_CLASSES, {
      description: 'Class of the context data: service, infrastructure, legislative or broker. Sets the default priority.',
    }),
    priority: Optional(
      Int({
        description: 'Higher wins where layers have the same path. Default by class: service 100, broker 200, infrastructure 300, legislative 400.',
        minimum: 0,
        maximum: 1000,
      }),
    ),
    files: Optional(
      List(LayerFile, {
        description: 'Files of the layer.',
        maxItems: 256,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['path'],
      }),
    ),
    sources: Optional(List(LayerSource, { description: 'Whole ConfigMaps and Secrets included as files.', maxItems: 16 })),
    values: Optional(StrMap({ description: 'Template values for every node ({{ values.NAME }}).', maxProperties: 64, valueMaxLength: 4096 })),
    variants: Optional(
      List(LayerVariant, {
        description: 'Per-site template values, chosen by the labels of the node the VM runs on. A layer with variants is re-rendered when its VM changes node.',
        maxItems: 32,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['name'],
      }),
    ),
    vmSelector: Optional(
      LabelSelector('Selects the VMContexts (by their labels, same namespace) that receive this layer, besides those that list it by name.'),
    ),
    hooks: Optional(
      List(LayerHook, {
        description: 'Hooks the guest runs when the merged context changes, e.g. reload a client when its cache address changes after a migration.',
        maxItems: 32,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['name'],
      }),
    ),
  },
  {
    description: 'Desired state of a ContextLayer.',
    'x-kubernetes-validations': [
      {
        rule: '(has(self.files) && size(self.files) > 0) || (has(self.sources) && size(self.sources) > 0)',
        message: 'a layer needs at least one entry in files or sources',
      },
    ],
  },
);

export const ContextLayerStatus = Obj(
  {
    observedGeneration: ObservedGeneration(),
    effectivePriority: Optional(Int({ description: 'The priority in force: spec.priority or the class default.', minimum: 0, maximum: 1000 })),
    renderedFor: Optional(Int({ description: 'How many VMs currently receive this layer.', minimum: 0 })),
    conditions: Optional(Conditions()),
  },
  { description: 'Observed state of a ContextLayer, written by the operator.' },
);

export type ContextLayerSpec = Static<typeof ContextLayerSpec>;
export type ContextLayerStatus = Static<typeof ContextLayerStatus>;
export type LayerFile = Static<typeof LayerFile>;
export type LayerSource = Static<typeof LayerSource>;
export type LayerVariant = Static<typeof LayerVariant>;
export type LayerHook = Static<typeof LayerHook>;
