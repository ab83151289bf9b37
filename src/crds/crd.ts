// TypeBox schema → apiextensions.k8s.io/v1 CustomResourceDefinition. The TypeBox source is
// stricter than Kubernetes allows (closed objects for offline unknown-field errors); this module
// removes what a structural schema must not carry and adds the CRD envelope.
import { stringify } from 'yaml';
import { GROUP, VERSION, type ResourceDefinition } from './index.js';

type JsonSchema = { [key: string]: unknown };

export const CATEGORY = 'recontext';

/** The openAPIV3Schema of one resource. */
export function openApiSchema(resource: ResourceDefinition): JsonSchema {
  return {
    type: 'object',
    description: resource.description,
    properties: {
      apiVersion: {
        type: 'string',
        description: `APIVersion defines the versioned schema of this representation of an object: ${GROUP}/${VERSION}.`,
      },
      kind: { type: 'string', description: `Kind is the REST resource this object represents: ${resource.kind}.` },
      metadata: { type: 'object' },
      spec: toStructural(resource.spec),
      status: toStructural(resource.status),
    },
    required: ['spec'],
  };
}

/** Deep copy of a TypeBox schema as a Kubernetes structural schema. */
export function toStructural(schema: unknown): JsonSchema {
  // JSON round trip drops TypeBox's symbol keys ([Kind], [OptionalKind]).
  return structural(JSON.parse(JSON.stringify(schema)) as JsonSchema);
}

function structural(node: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$id') continue;
    out[key] = value;
  }
  if (out.type === 'object') {
    if (out.additionalProperties === false) delete out.additionalProperties;
    // A map (additionalProperties) must not also declare properties, not even an empty set.
    if (typeof out.additionalProperties === 'object') delete out.properties;
    const properties = out.properties as Record<string, JsonSchema> | undefined;
    if (properties) {
      out.properties = Object.fromEntries(Object.entries(properties).map(([name, child]) => [name, structural(child)]));
      // A defaulted field is filled by the API server before validation: not required of the user.
      const required = ((out.required as string[] | undefined) ?? []).filter((name) => properties[name]?.default === undefined);
      if (required.length > 0) out.required = required;
      else delete out.required;
    }
    if (typeof out.additionalProperties === 'object') out.additionalProperties = structural(out.additionalProperties as JsonSchema);
  }
  if (out.type === 'array' && typeof out.items === 'object') out.items = structural(out.items as JsonSchema);
  return out;
}

export function customResourceDefinition(resource: ResourceDefinition): JsonSchema {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${resource.plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'recontext', 'app.kubernetes.io/part-of': 'recontext' },
    },
    spec: {
      group: GROUP,
      names: {
        kind: resource.kind,
        listKind: `${resource.kind}List`,
        plural: resource.plural,
        singular: resource.singular,
        shortNames: [...resource.shortNames],
        categories: [CATEGORY],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: openApiSchema(resource) },
          subresources: { status: {} },
          additionalPrinterColumns: resource.printerColumns.map((c) => ({ ...c })),
        },
      ],
    },
  };
}

export const GENERATED_HEADER = '# Generated from src/crds by `npm run generate`. Do not edit by hand.\n';

export function crdFileName(resource: ResourceDefinition): string {
  return `${GROUP}_${resource.plural}.yaml`;
}

export function crdYaml(resource: ResourceDefinition): string {
  return GENERATED_HEADER + stringify(customResourceDefinition(resource), { lineWidth: 0 });
}
