// Building blocks for the CRD schemas. Every schema in src/crds is a TypeBox schema: the same
// object yields the TypeScript type (Static<>), the CRD's openAPIV3Schema (crd.ts) and the
// offline validator (validate.ts). Helpers here keep Kubernetes' structural-schema rules in one
// place: every node has a type, every field a description, no unions that the API server rejects.
import {
  FormatRegistry,
  Kind,
  Type,
  TypeRegistry,
  type ObjectOptions,
  type SchemaOptions,
  type TProperties,
  type TSchema,
  type TUnsafe,
} from '@sinclair/typebox';

export const GROUP = 'recontext.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** A CEL rule as Kubernetes evaluates it (x-kubernetes-validations), checked offline by validate.ts. */
export interface CelRule {
  readonly rule: string;
  readonly message: string;
  /** The field the error is reported on, relative to the node carrying the rule (e.g. ".high"). */
  readonly fieldPath?: string;
  readonly reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

export interface KubeOptions {
  readonly 'x-kubernetes-validations'?: readonly CelRule[];
  readonly 'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  readonly 'x-kubernetes-list-map-keys'?: readonly string[];
  readonly 'x-kubernetes-map-type'?: 'atomic' | 'granular';
}

type Described = { description: string };

/** A closed object: unknown fields are an error offline (kubectl's strict field validation). */
export function Obj<T extends TProperties>(properties: T, options: ObjectOptions & KubeOptions & Described) {
  return Type.Object(properties, { additionalProperties: false, ...options });
}

export function Str(options: SchemaOptions & KubeOptions & Described & { maxLength: number; minLength?: number; pattern?: string; format?: string }) {
  return Type.String(options);
}

export function Int(options: SchemaOptions & Described & { minimum?: number; maximum?: number; format?: 'int32' | 'int64' }) {
  return Type.Integer({ format: 'int32', ...options });
}

export function Num(options: SchemaOptions & Described & { minimum?: number; maximum?: number }) {
  return Type.Number(options);
}

export function Bool(options: SchemaOptions & Described) {
  return Type.Boolean(options);
}

export function List<T extends TSchema>(items: T, options: SchemaOptions & KubeOptions & Described & { maxItems: number; minItems?: number }) {
  return Type.Array(items, options);
}

/** string → string map (labels, template values). Rendered as additionalProperties in the CRD. */
export function StrMap(options: SchemaOptions & KubeOptions & Described & { maxProperties: number; valueMaxLength: number }) {
  const { valueMaxLength, ...rest } = options;
  return Type.Object({}, { ...rest, additionalProperties: Type.String({ maxLength: valueMaxLength, description: 'Value of the entry.' }) }) as unknown as TUnsafe<Record<string, string>>;
}

TypeRegistry.Set<{ enum: string[] }>('StringEnum', (schema, value) => typeof value === 'string' && schema.enum.includes(value));

/** A string restricted to a fixed set of values: `{type: string, enum: [...]}` (no anyOf, which is not structural). */
export function Enum<const T extends readonly string[]>(values: T, options: SchemaOptions & KubeOptions & Described): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ ...options, [Kind]: 'StringEnum', type: 'string', enum: [...values] });
}

export const Optional = Type.Optional;

// RFC 3339 timestamps, as metav1.Time serializes.
FormatRegistry.Set('date-time', (value) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(value));
// Go-style durations as used across Kubernetes APIs ("30s", "5m", "1h30m").
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';

export function Duration(description: string, defaultValue?: string) {
  return Str({ description, maxLength: 32, pattern: DURATION_PATTERN, ...(defaultValue ? { default: defaultValue } : {}) });
}

/** DNS-1123 subdomain, the name of any namespaced object. */
export const OBJECT_NAME_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

export function ObjectName(description: string) {
  return Str({ description, minLength: 1, maxLength: 253, pattern: OBJECT_NAME_PATTERN });
}

/** Kubernetes label selector (metav1.LabelSelector). An empty selector matches everything. */
export function LabelSelector(description: string) {
  return Obj(
    {
      matchLabels: Optional(
        StrMap({ description: 'Labels that must all be present with exactly these values.', maxProperties: 64, valueMaxLength: 63 }),
      ),
      matchExpressions: Optional(
        List(
          Obj(
            {
              key: Str({ description: 'The label key the requirement applies to.', minLength: 1, maxLength: 317 }),
              operator: Enum(['In', 'NotIn', 'Exists', 'DoesNotExist'] as const, {
                description: 'How the key relates to the values: In, NotIn, Exists or DoesNotExist.',
              }),
              values: Optional(
                List(Str({ description: 'A label value.', maxLength: 63 }), {
                  description: 'Values for In and NotIn (at least one); must be empty for Exists and DoesNotExist.',
                  maxItems: 64,
                }),
              ),
            },
            {
              description: 'A label requirement.',
              'x-kubernetes-validations': [
                {
                  rule: "(self.operator == 'In' || self.operator == 'NotIn') == (has(self.values) && size(self.values) > 0)",
                  message: 'values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist',
                },
              ],
            },
          ),
          { description: 'Label requirements that must all hold.', maxItems: 16 },
        ),
      ),
    },
    { description },
  );
}

/** metav1.Condition, as every Kubernetes status uses it. */
export const Condition = Obj(
  {
    type: Str({ description: 'Condition type, e.g. Ready, Invalid, Recontextualizing, Degraded.', minLength: 1, maxLength: 316 }),
    status: Enum(['True', 'False', 'Unknown'] as const, { description: 'Status of the condition: True, False or Unknown.' }),
    observedGeneration: Optional(
      Int({ description: 'The .metadata.generation the condition was set for.', minimum: 0, format: 'int64' }),
    ),
    lastTransitionTime: Str({ description: 'When the condition last changed status (RFC 3339).', maxLength: 64, format: 'date-time' }),
    reason: Str({
      description: 'A CamelCase machine-readable reason for the last transition; see docs/troubleshooting.md.',
      minLength: 1,
      maxLength: 1024,
      pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
    }),
    message: Str({ description: 'A human-readable explanation of the last transition.', maxLength: 32768 }),
  },
  { description: 'A standard Kubernetes condition.' },
);

/** status.observedGeneration: which .metadata.generation the status describes. */
export function ObservedGeneration() {
  return Optional(Int({ description: 'The .metadata.generation this status describes.', minimum: 0, format: 'int64' }));
}

export function Conditions() {
  return List(Condition, {
    description: 'Standard conditions of the object, one per type.',
    maxItems: 16,
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
  });
}

/** A reference to one key of a ConfigMap or Secret in the object's own namespace. */
export function KeyRef(what: 'ConfigMap' | 'Secret') {
  return Obj(
    {
      name: ObjectName(`Name of the ${what} (same namespace as the layer).`),
      key: Str({ description: `Key inside the ${what}.`, minLength: 1, maxLength: 253, pattern: '^[-._a-zA-Z0-9]+$' }),
      optional: Optional(Bool({ description: `If true, a missing ${what} or key leaves the file out instead of failing the layer.`, default: false })),
    },
    { description: `Selects one key of a ${what} in the same namespace.` },
  );
}
