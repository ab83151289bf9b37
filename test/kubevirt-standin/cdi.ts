// Test-only stand-in for CDI's DataVolume import (the importer pod + the DataVolume controller):
// spec.source.http.url is fetched into <storageDir>/<namespace>/<name>.img, where QEMU on either
// test bed host can open it, and status is written as CDI writes it. Not CDI: no PVC, no pod,
// no scratch space, no conversion (the bytes are stored as fetched, which is what an ISO needs).
import { createWriteStream, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { KubeClient } from '../../src/kube/client.js';
import { objectPath, SECRETS, CONFIG_MAPS } from '../../src/kube/resources.js';
import { DATA_VOLUMES, mergeConditions, patchStatus, type Condition, type Log, type Meta } from './common.js';

export interface DataVolume {
  metadata: Meta;
  spec?: {
    source?: { http?: { url?: string; secretRef?: string; certConfigMap?: string }; [other: string]: unknown };
    [other: string]: unknown;
  };
  status?: { phase?: string; progress?: string; restartCount?: number; conditions?: Condition[]; claimName?: string };
}

export interface CdiOptions {
  readonly client: KubeClient;
  readonly storageDir: string;
  readonly log: Log;
  /** First retry delay after a failed import; doubles per failure up to retryMaxMs. Default 1000 ms. */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
}

/** An HTTP answer other than 200, worded as CDI's importer reports it. */
class ImportError extends Error {}

export class CdiImporter {
  readonly #options: CdiOptions;
  /**
   * After a failed import, no new attempt before this time (ms), whatever events come: each
   * attempt writes status, and that write's own watch event must not start the next attempt.
   */
  readonly #notBefore = new Map<string, number>();

  constructor(options: CdiOptions) {
    this.#options = options;
  }

  /** Where an imported DataVolume's bytes are (whether or not they are there yet). */
  filePath(namespace: string, name: string): string {
    return join(this.#options.storageDir, namespace, `${name}.img`);
  }

  /** The file of a DataVolume whose import Succeeded, else undefined. */
  importedFile(dv: DataVolume | undefined): string | undefined {
    if (!dv || dv.status?.phase !== 'Succeeded') return undefined;
    const file = this.filePath(dv.metadata.namespace!, dv.metadata.name);
    return existsSync(file) ? file : undefined;
  }

  /**
   * Level-based, from a fresh read (the informer's copy may still show a phase this stand-in has
   * already moved on from: importing again would be wasted). Returns a requeue delay.
   */
  async reconcile(namespace: string, name: string): Promise<number | undefined> {
    const file = this.filePath(namespace, name);
    const key = `${namespace}/${name}`;
    const wait = (this.#notBefore.get(key) ?? 0) - Date.now();
    if (wait > 0) return wait;
    this.#notBefore.delete(key);
    const dv = await this.#options.client.getOrUndefined<DataVolume>(objectPath(DATA_VOLUMES, namespace, name));
    if (!dv || dv.metadata.deletionTimestamp) {
      if (existsSync(file)) {
        rmSync(file, { force: true });
        this.#options.log(`removed the import of deleted DataVolume ${namespace}/${name}`);
      }
      return undefined;
    }
    const path = objectPath(DATA_VOLUMES, namespace, name);
    const status = (dv.status ?? {}) as Record<string, unknown> & NonNullable<DataVolume['status']>;
    if (status.phase === 'Succeeded' && existsSync(file)) return undefined;
    const http = dv.spec?.source?.http;
    if (!http?.url) {
      this.#options.log(`DataVolume ${namespace}/${name}: only spec.source.http is imported by the stand-in; left alone`);
      return undefined;
    }
    const bound: Condition = { type: 'Bound', status: 'True', reason: 'Bound', message: `PVC ${name} Bound` };
    if (!status.phase || status.phase === 'Pending' || status.phase === 'Succeeded') {
      await patchStatus(this.#options.client, path, status, {
        phase: 'ImportScheduled',
        progress: 'N/A',
        claimName: name,
        conditions: mergeConditions(status.conditions, [bound, { type: 'Ready', status: 'False' }, { type: 'Running', status: 'False' }], 'lastHeartbeatTime'),
      });
      this.#options.log(`DataVolume ${namespace}/${name}: ImportScheduled`);
    }
    const running = await this.#options.client.get<DataVolume>(path);
    await patchStatus(this.#options.client, path, running.status as Record<string, unknown>, {
      phase: 'ImportInProgress',
      conditions: mergeConditions(running.status?.conditions, [bound, { type: 'Ready', status: 'False' }, { type: 'Running', status: 'True', reason: 'Pod is running' }], 'lastHeartbeatTime'),
    });
    const started = Date.now();
    try {
      const bytes = await this.#fetch(namespace, http, file);
      const done = await this.#options.client.get<DataVolume>(path);
      await patchStatus(this.#options.client, path, done.status as Record<string, unknown>, {
        phase: 'Succeeded',
        progress: '100.0%',
        conditions: mergeConditions(
          done.status?.conditions,
          [bound, { type: 'Ready', status: 'True' }, { type: 'Running', status: 'False', reason: 'Completed', message: 'Import Complete' }],
          'lastHeartbeatTime',
        ),
      });
      this.#options.log(`DataVolume ${namespace}/${name}: imported ${bytes} bytes from ${http.url} in ${Date.now() - started} ms`);
      return undefined;
    } catch (error: unknown) {
      // CDI restarts the importer pod (restartCount), keeps the phase ImportInProgress and shows
      // the pod's termination message on the Running condition.
      const message = error instanceof Error ? error.message : String(error);
      const failed = await this.#options.client.get<DataVolume>(path);
      const restartCount = (failed.status?.restartCount ?? 0) + 1;
      await patchStatus(this.#options.client, path, failed.status as Record<string, unknown>, {
        phase: 'ImportInProgress',
        restartCount,
        conditions: mergeConditions(failed.status?.conditions, [bound, { type: 'Ready', status: 'False' }, { type: 'Running', status: 'False', reason: 'Error', message }], 'lastHeartbeatTime'),
      });
      const base = this.#options.retryBaseMs ?? 1000;
      const delay = Math.min(this.#options.retryMaxMs ?? 30_000, base * 2 ** Math.min(restartCount - 1, 20));
      this.#notBefore.set(key, Date.now() + delay);
      this.#options.log(`DataVolume ${namespace}/${name}: import failed (${message}); retry ${restartCount} in ${delay} ms`);
      return delay;
    }
  }

  /** Fetches the URL into `file` atomically (temporary name, then rename); returns the size. */
  async #fetch(namespace: string, http: { url?: string; secretRef?: string; certConfigMap?: string }, file: string): Promise<number> {
    const url = new URL(http.url!);
    const headers: Record<string, string> = {};
    if (http.secretRef) {
      const secret = await this.#options.client.get<{ data?: Record<string, string> }>(objectPath(SECRETS, namespace, http.secretRef));
      const decode = (key: string) => Buffer.from(secret.data?.[key] ?? '', 'base64').toString('utf8');
      headers.Authorization = `Basic ${Buffer.from(`${decode('accessKeyId')}:${decode('secretKey')}`).toString('base64')}`;
    }
    let ca: string[] | undefined;
    if (http.certConfigMap) {
      const configMap = await this.#options.client.get<{ data?: Record<string, string> }>(objectPath(CONFIG_MAPS, namespace, http.certConfigMap));
      ca = Object.values(configMap.data ?? {});
    }
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const options = { headers, timeout: 60_000, ...(ca ? { ca } : {}) };
      const req = url.protocol === 'https:' ? httpsRequest(url, options, resolve) : httpRequest(url, options, resolve);
      req.on('timeout', () => req.destroy(new Error(`Unable to connect to http data source: timeout reading ${url.host}`)));
      req.on('error', (error) => reject(error instanceof ImportError ? error : new ImportError(`Unable to connect to http data source: ${error.message}`)));
      req.end();
    });
    if (response.statusCode !== 200) {
      response.resume();
      throw new ImportError(`Unable to connect to http data source: expected status code 200, got ${response.statusCode}. Status: ${response.statusCode} ${response.statusMessage ?? ''}`.trimEnd());
    }
    mkdirSync(dirname(file), { recursive: true });
    const temporary = `${file}.importing-${process.pid}`;
    let size = 0;
    response.on('data', (chunk: Buffer) => (size += chunk.length));
    try {
      await pipeline(response, createWriteStream(temporary));
      renameSync(temporary, file);
    } catch (error: unknown) {
      rmSync(temporary, { force: true });
      throw error;
    }
    return size;
  }
}
