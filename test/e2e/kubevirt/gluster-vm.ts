// The story both `npm run e2e:kubevirt` and `npm run bench:kubevirt` tell on the local cluster: the
// operator installed by helm with the KubeVirt driver, examples/gluster, and one VirtualMachine
// booting the fat test guest from a containerDisk with an empty CD-ROM drive per layer. What the
// guest's GlusterFS client stand-in reads is on its serial console (KubeVirt's guest-console-log
// container), one `APP <n> start|reload <file> <line>` per line of configuration.
import { join } from 'node:path';
import { runCommand } from '../../controlplane/build.js';
import { until } from '../../integration/scenario.js';
import type { KubeVirtE2e } from './setup.js';

export const REPO = join(import.meta.dirname, '..', '..', '..');
export const SYSTEM = 'recontext-system';
export const VM = 'gluster-client-1';
export const LAYERS = ['gluster-service', 'site-cache', 'data-residency', 'broker-endpoints'] as const;

export interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}
export interface LastRecontext {
  trigger?: string;
  startedAt?: string;
  totalMs?: number;
  phasesMs?: Record<string, number>;
  attachStepsMs?: Record<string, number>;
  sinceMigrationMs?: { migrationId?: string; volumeInSpec?: number; volumeReady?: number };
}
export interface VMContext {
  metadata: { generation: number; uid: string };
  status?: {
    observedGeneration?: number;
    node?: string;
    lastMigrationId?: string;
    layers?: { name: string; digest: string; device?: string }[];
    conditions?: Condition[];
    lastRecontext?: LastRecontext;
  };
}
export interface Vmi {
  metadata: { uid: string };
  status?: { phase?: string; nodeName?: string; conditions?: Condition[]; migrationState?: { completed?: boolean; migrationUid?: string; endTimestamp?: string } };
}

export const isReady = (v: VMContext): boolean => v.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true && v.status.observedGeneration === v.metadata.generation;
export const digestOf = (v: VMContext, layer: string): string | undefined => v.status?.layers?.find((l) => l.name === layer)?.digest;
export const otherZone = (zone: string): string => (zone === 'zone-a' ? 'zone-b' : 'zone-a');
/** The client's line for the cache address of a zone (a RegExp source). */
export const cacheHostPattern = (zone: string): string => (zone === 'zone-a' ? 'cache-a\\.zone-a' : 'cache-b\\.zone-b');

/** A VM with a boot disk and an empty CD-ROM drive per layer (KubeVirt hot-plugs only into drives the VM started with). */
export function vmManifest(guestImage: string): string {
  return JSON.stringify({
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: { name: VM, labels: { app: 'gluster-client' } },
    spec: {
      runStrategy: 'Always',
      template: {
        metadata: { labels: { app: 'gluster-client' } },
        spec: {
          terminationGracePeriodSeconds: 0,
          domain: {
            cpu: { cores: 1 },
            memory: { guest: '512Mi' },
            resources: { requests: { memory: '512Mi' } },
            devices: {
              logSerialConsole: true,
              autoattachPodInterface: false,
              disks: [{ name: 'boot', bootOrder: 1, disk: { bus: 'virtio' } }, ...LAYERS.map((layer) => ({ name: `ctx-${layer}`, cdrom: { bus: 'sata' } }))],
            },
          },
          volumes: [{ name: 'boot', containerDisk: { image: guestImage, imagePullPolicy: 'IfNotPresent' } }],
        },
      },
    },
  });
}

/** kubectl, helm and the reads of the story, in namespace `namespace`. */
export function glusterSession(e2e: KubeVirtE2e, namespace: string) {
  const kubectl = (args: readonly string[], input?: string): Promise<string> => runCommand(e2e.kubectl, ['--kubeconfig', e2e.kubeconfig, ...args], { input });
  const json = async <T>(args: readonly string[]): Promise<T> => JSON.parse(await kubectl([...args, '-o', 'json'])) as T;
  const vmi = (): Promise<Vmi> => json<Vmi>(['get', 'vmi', VM, '-n', namespace]);
  const helm = (args: readonly string[]): Promise<string> => runCommand(e2e.helm, [...args, '--kubeconfig', e2e.kubeconfig]);

  /** The virt-launcher pod that runs the VM now (on the VMI's node). */
  const currentPod = async (): Promise<string | undefined> => {
    const { status } = await vmi();
    const pods = await json<{ items: { metadata: { name: string }; spec: { nodeName?: string }; status: { phase: string } }[] }>(['get', 'pods', '-n', namespace, '-l', `vm.kubevirt.io/name=${VM}`]);
    return pods.items.find((p) => p.spec.nodeName === status?.nodeName && p.status.phase === 'Running')?.metadata.name;
  };
  /** The guest's serial console as that pod has it; with `timestamps`, each line starts with when it was read (RFC 3339). */
  const consoleText = async (options: { timestamps?: boolean } = {}): Promise<string> => {
    const pod = await currentPod();
    if (!pod) return '';
    return kubectl(['logs', '-n', namespace, pod, '-c', 'guest-console-log', ...(options.timestamps ? ['--timestamps'] : [])]).catch(() => '');
  };

  return {
    kubectl,
    json,
    vmi,
    consoleText,
    vmContext: (): Promise<VMContext> => json<VMContext>(['get', 'vmcontext', VM, '-n', namespace]),
    zoneOf: async (node: string): Promise<string> => (await kubectl(['get', 'node', node, '-o', 'jsonpath={.metadata.labels.topology\\.kubernetes\\.io/zone}'])).trim(),
    helm,

    /** helm upgrade --install with the KubeVirt driver on the `shared` (ReadWriteMany) class, plus `sets`. */
    async installOperator(sets: readonly string[] = []): Promise<void> {
      await helm([
        'upgrade', '--install', 'recontext', join(REPO, 'charts', 'recontext'), '-n', SYSTEM, '--create-namespace',
        '--set', `image.repository=${e2e.operatorImage.repository}`, '--set', `image.tag=${e2e.operatorImage.tag}`, '--set', 'image.pullPolicy=Never',
        '--set', 'operator.driver=kubevirt', '--set', 'operator.logLevel=debug',
        // ReadWriteMany: KubeVirt live-migrates only VMs whose volumes are shared, CD-ROMs included.
        '--set', 'operator.kubevirt.storageClass=shared',
        ...sets.flatMap((set) => ['--set', set]),
        '--wait', '--timeout', '5m',
      ]);
    },

    /** A fresh namespace with the VM and examples/gluster applied. */
    async applyStory(): Promise<void> {
      await kubectl(['delete', 'namespace', namespace, '--ignore-not-found', '--wait=true', '--timeout=300s']);
      await kubectl(['create', 'namespace', namespace]);
      await kubectl(['apply', '-n', namespace, '-f', '-'], vmManifest(e2e.guestImage));
      await kubectl(['apply', '--server-side', '-n', namespace, '-f', join(REPO, 'examples', 'gluster')]);
    },

    /** Waits for a console line; returns the whole line (the console's tail in the error). */
    async consoleLine(what: string, pattern: RegExp, timeoutMs: number): Promise<string> {
      let last = '';
      try {
        return await until(what, async () => {
          last = await consoleText();
          return last.split('\n').find((line) => pattern.test(line));
        }, timeoutMs);
      } catch (error: unknown) {
        throw new Error(`${String(error)}\nconsole tail:\n${last.split('\n').slice(-40).join('\n')}`);
      }
    },
  };
}

export type GlusterSession = ReturnType<typeof glusterSession>;
