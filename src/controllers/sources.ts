// ConfigMaps and Secrets as the renderer sees them (decoded, binary-safe), from the informer caches.
import type { SourceLookup } from '../reconcile/render.js';
import type { ObjectMeta } from '../runtime/informer.js';
import type { Cache } from './ports.js';

export interface ConfigMapObject extends ObjectMeta {
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}

export interface SecretObject extends ObjectMeta {
  data?: Record<string, string>;
}

export function sourceLookup(configMaps: Cache<ConfigMapObject>, secrets: Cache<SecretObject>, namespace: string): SourceLookup {
  return {
    configMap(name) {
      const cm = configMaps.get(`${namespace}/${name}`);
      if (!cm) return undefined;
      return { ...decode(cm.data, 'utf8'), ...decode(cm.binaryData, 'base64') };
    },
    secret(name) {
      const secret = secrets.get(`${namespace}/${name}`);
      return secret ? decode(secret.data, 'base64') : undefined;
    },
  };
}

function decode(data: Record<string, string> | undefined, encoding: 'utf8' | 'base64'): Record<string, Buffer> {
  return Object.fromEntries(Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, encoding)]));
}
