// `recontext operator`: the controller process, against a Kubernetes API server or (standalone)
// against a directory of manifests and local libvirt hosts.
import { DEFAULT_CONCURRENCY } from '../runtime/controller.js';
import { DEFAULT_WATCHDOG_MS } from '../runtime/informer.js';
import { LEADER_ELECTION_DEFAULTS } from '../runtime/leader.js';
import { formatDuration, parseDuration } from '../reconcile/policy/index.js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { createLogger, type Level, type Logger } from '../runtime/log.js';
import { ClusterOperator, type OperatorOptions } from '../controllers/cluster-operator.js';
import { OperatorMetrics } from '../runtime/metrics.js';
import { LibvirtDriver } from '../drivers/libvirt/driver.js';
import { DEFAULT_KUBEVIRT_WAIT_MS, KubeVirtDriver } from '../drivers/kubevirt/driver.js';
import { ImagesOnlyDriver } from '../drivers/none.js';
import { ImageUrlSigner } from '../images/server.js';
import { MetricSources, PrometheusSource, ReportedSource, type MetricSource } from '../metric-sources/index.js';
import { KubeClient } from '../kube/client.js';
import { HOSTS_FILE, readHostsFile, resolveHosts } from '../standalone/hosts.js';
import { StandaloneOperator } from '../standalone/operator.js';

interface OperatorFlags {
  kubeconfig?: string;
  namespace?: string;
  concurrency: string;
  metricsAddress: string;
  leaderElect: boolean;
  leaseNamespace?: string;
  leaseDuration: string;
  renewDeadline: string;
  retryPeriod: string;
  watchdog: string;
  imageDir?: string;
  driver: 'none' | 'kubevirt';
  imageServerAddress?: string;
  imageBaseUrl?: string;
  imageSigningKeyFile?: string;
  imageTlsCert?: string;
  imageTlsKey?: string;
  storageClass?: string;
  accessMode?: 'ReadWriteMany' | 'ReadWriteOnce' | 'ReadOnlyMany';
  kubevirtWait: string;
  kubevirtTargetPods: boolean;
  podName?: string;
  podNamespace?: string;
  prometheusUrl?: string;
  acceptReports: boolean;
  logLevel: Level;
  standalone: boolean;
  dir?: string;
  libvirt?: string[];
  hosts?: string;
  stateDir: string;
}

const env = (name: string) => process.env[name] || undefined;

export function operatorCommand(): Command {
  return new Command('operator')
    .description('Run the operator: reconcile ContextLayers and VMContexts into layer images and deliver them to VMs.')
    .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account)', env('KUBECONFIG'))
    .option('-n, --namespace <namespace>', 'watch only this namespace (default: all namespaces) [env RECONTEXT_NAMESPACE]', env('RECONTEXT_NAMESPACE'))
    .option('--concurrency <n>', 'workers per controller', env('RECONTEXT_CONCURRENCY') ?? String(DEFAULT_CONCURRENCY))
    .option('--metrics-address <host:port>', 'serve /healthz, /readyz and /metrics here', env('RECONTEXT_METRICS_ADDRESS') ?? ':8080')
    .option('--no-leader-elect', 'reconcile without a leader lease (only when a single replica runs)')
    .option('--lease-namespace <namespace>', 'namespace of the leader lease (default: --namespace, else "default")', env('RECONTEXT_LEASE_NAMESPACE'))
    .option('--lease-duration <duration>', 'how long a lease lasts without renewal; a standby takes over after it', formatDuration(LEADER_ELECTION_DEFAULTS.leaseDurationMs))
    .option('--renew-deadline <duration>', 'the leader steps down when it cannot renew for this long', formatDuration(LEADER_ELECTION_DEFAULTS.renewDeadlineMs))
    .option('--retry-period <duration>', 'how often the lease is renewed or tried', formatDuration(LEADER_ELECTION_DEFAULTS.retryPeriodMs))
    .option('--watchdog <duration>', 'restart a watch that delivered nothing, not even a bookmark, for this long', formatDuration(DEFAULT_WATCHDOG_MS))
    .option('--image-dir <dir>', 'content-addressed image store (default: /var/lib/recontext/images; standalone: <state-dir>/images)', env('RECONTEXT_IMAGE_DIR'))
    .addOption(new Option('--driver <name>', 'cluster mode: how images reach VMs; kubevirt = CDI DataVolumes + declarative CD-ROM hotplug, none = build and record only (attaches nothing, so no finalizer)').choices(['none', 'kubevirt']).default(env('RECONTEXT_DRIVER') ?? 'none'))
    .option('--image-server-address <host:port>', 'serve the built images here, signed URLs only (kubevirt: for CDI, default :8090; none: only when set)', env('RECONTEXT_IMAGE_SERVER_ADDRESS'))
    .option('--image-base-url <url>', 'kubevirt: how CDI reaches the image server, e.g. http://recontext-images.recontext.svc:8090 [env RECONTEXT_IMAGE_BASE_URL]', env('RECONTEXT_IMAGE_BASE_URL'))
    .option('--image-signing-key-file <path>', 'key that signs image URLs (≥ 16 bytes; shared by all replicas). Default: a random key per process', env('RECONTEXT_IMAGE_SIGNING_KEY_FILE'))
    .option('--image-tls-cert <path>', 'kubevirt: serve images over HTTPS with this PEM certificate (and --image-tls-key)')
    .option('--image-tls-key <path>', 'kubevirt: PEM key of --image-tls-cert')
    .option('--storage-class <name>', 'kubevirt: storage class of the DataVolumes (default: the cluster default)', env('RECONTEXT_STORAGE_CLASS'))
    .addOption(new Option('--access-mode <mode>', 'kubevirt: access mode of the DataVolumes (default: from the storage profile; live migration needs ReadWriteMany)').choices(['ReadWriteMany', 'ReadWriteOnce', 'ReadOnlyMany']))
    .option('--kubevirt-wait <duration>', 'kubevirt: how long one reconciliation waits for an import or the VMI before reporting it pending', formatDuration(DEFAULT_KUBEVIRT_WAIT_MS))
    .option('--no-kubevirt-target-pods', 'kubevirt: do not watch migration target pods (needs pods list/watch); a migration\'s images are then prepared only once KubeVirt names the target in the VMI, seconds later')
    .option('--prometheus-url <url>', 'MigrationPolicy: Prometheus HTTP API for metrics that name no address [env RECONTEXT_PROMETHEUS_URL]', env('RECONTEXT_PROMETHEUS_URL'))
    .option('--accept-reports', 'MigrationPolicy: accept metric.reported values on POST /v1/reports at --metrics-address (trusted networks only)', false)
    .option('--pod-name <name>', 'this replica\'s pod, labelled recontext.dev/leader=true while it leads [env POD_NAME]', env('POD_NAME'))
    .option('--pod-namespace <namespace>', 'namespace of --pod-name [env POD_NAMESPACE]', env('POD_NAMESPACE'))
    .option('--standalone', 'run without Kubernetes: objects from --dir, VMs on local libvirt hosts', false)
    .option('--dir <dir>', 'standalone: directory of ContextLayer/VMContext/ConfigMap/Secret manifests (re-read on change) [env RECONTEXT_DIR]', env('RECONTEXT_DIR'))
    .option('--libvirt <uri,...>', 'standalone: libvirt hosts to drive, e.g. qemu:///system or qemu+unix:///system?socket=PATH (default: every host of the hosts file)', (value: string, previous: string[] | undefined) => [...(previous ?? []), ...value.split(',').filter(Boolean)])
    .option('--hosts <file>', `standalone: hosts file with each host's name, URI and labels (default: <dir>/${HOSTS_FILE})`)
    .option('--state-dir <dir>', 'standalone: where statuses and images are kept', env('RECONTEXT_STATE_DIR') ?? '/var/lib/recontext')
    .addOption(new Option('--log-level <level>', 'log level').choices(['debug', 'info', 'warn', 'error']).default(env('RECONTEXT_LOG_LEVEL') ?? 'info'))
    .addHelpText(
      'after',
      `
Durations are Go durations: 15s, 1m30s, 500ms. A plain number is read as milliseconds, as before,
with a deprecation warning.
Logs are JSON lines on stderr. SIGTERM/SIGINT stop it cleanly (the leader lease is released).

Standalone mode (no cluster; one operator per site, no leader election):
  recontext operator --standalone --dir ./site --libvirt qemu:///system
The hosts file (${HOSTS_FILE} in --dir) gives each host the labels templates see as node.labels:
  hosts:
    - name: host-a
      uri: qemu:///system
      labels: { topology.kubernetes.io/zone: zone-a }
Status of each VMContext: <state-dir>/objects/vmcontexts/<namespace>/<name>.json.`,
    )
    .action(async (flags: OperatorFlags) => {
      const logger = createLogger({ level: flags.logLevel });
      const metrics = new OperatorMetrics();
      const concurrency = Number(flags.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`--concurrency must be a positive integer, got ${flags.concurrency}`);
      if (flags.standalone) return runStandalone(flags, concurrency, logger, metrics);
      if (flags.dir || flags.libvirt || flags.hosts) throw new Error('--dir, --libvirt and --hosts need --standalone');
      const millis = (name: string, value: string) => durationFlag(name, value, (message) => logger.warn(message));
      const client = KubeClient.fromKubeconfig(flags.kubeconfig, { onRequest: (verb, code) => metrics.kubeRequests.inc({ verb, code: String(code) }) });
      if (flags.driver !== 'kubevirt' && flags.imageBaseUrl) throw new Error('--image-base-url needs --driver kubevirt (it is the URL handed to CDI)');
      const delivery =
        flags.driver === 'kubevirt'
          ? kubevirtDelivery(flags, client, logger, metrics, millis('kubevirt-wait', flags.kubevirtWait))
          : {
              driver: new ImagesOnlyDriver({ client, logger, metrics, ...(flags.namespace ? { namespace: flags.namespace } : {}) }),
              // The images are built either way; the leader serves them if asked, for a delivery of your own.
              ...(flags.imageServerAddress ? { imageServer: imageServing(flags, logger).imageServer } : {}),
            };
      const operator = new ClusterOperator({
        client,
        ...delivery,
        policyMetrics: policyMetrics(flags),
        ...(flags.podName && flags.podNamespace ? { pod: { name: flags.podName, namespace: flags.podNamespace } } : {}),
        logger,
        metrics,
        imageDirectory: flags.imageDir ?? '/var/lib/recontext/images',
        concurrency,
        metricsAddress: flags.metricsAddress,
        leaderElection: flags.leaderElect,
        leaseDurationMs: millis('lease-duration', flags.leaseDuration),
        renewDeadlineMs: millis('renew-deadline', flags.renewDeadline),
        retryPeriodMs: millis('retry-period', flags.retryPeriod),
        watchdogMs: millis('watchdog', flags.watchdog),
        ...(flags.namespace ? { namespace: flags.namespace } : {}),
        ...(flags.leaseNamespace ? { leaseNamespace: flags.leaseNamespace } : {}),
        onLostLeadership: () => {
          logger.error('lost leadership; exiting so that a restart begins clean');
          process.exit(1);
        },
      });
      stopOnSignals(operator, logger);
      logger.info('starting', { server: client.server, namespace: flags.namespace ?? '(all)', driver: flags.driver, imageDir: flags.imageDir });
      await operator.start();
      await new Promise(() => {}); // runs until a signal stops it
    });
}

/**
 * A duration flag in milliseconds: a Go duration (15s, 1m30s, 500ms), or, deprecated, a plain
 * number of milliseconds (what these flags took before), accepted with a warning.
 */
export function durationFlag(name: string, value: string, warn: (message: string) => void): number {
  if (/^\d+$/.test(value)) {
    const ms = Number(value);
    if (ms > 0) {
      warn(`--${name} ${value}: a number of milliseconds is deprecated; write a Go duration: --${name} ${ms % 1000 === 0 ? formatDuration(ms) : `${ms}ms`}`);
      return ms;
    }
  }
  let ms: number;
  try {
    ms = parseDuration(value);
  } catch {
    throw new Error(`--${name} must be a Go duration such as 15s, 1m30s or 500ms, got ${JSON.stringify(value)}`);
  }
  if (ms <= 0) throw new Error(`--${name} must be longer than 0, got ${value}`);
  return ms;
}

/** MigrationPolicy metrics: Prometheus always (a metric may name its own address), reported values if accepted. */
function policyMetrics(flags: OperatorFlags): { source: MetricSource; reported?: ReportedSource } {
  if (flags.prometheusUrl && !/^https?:\/\//.test(flags.prometheusUrl)) throw new Error(`--prometheus-url must be an http(s) URL, got ${flags.prometheusUrl}`);
  const prometheus = new PrometheusSource(flags.prometheusUrl ? { defaultAddress: flags.prometheusUrl } : {});
  const reported = flags.acceptReports ? new ReportedSource() : undefined;
  return { source: new MetricSources({ prometheus, ...(reported ? { reported } : {}) }), ...(reported ? { reported } : {}) };
}

/** The leader's image server and the signer of its URLs (the key every replica shares). */
function imageServing(flags: OperatorFlags, logger: Logger): { signer: ImageUrlSigner; imageServer: NonNullable<OperatorOptions['imageServer']> } {
  if (Boolean(flags.imageTlsCert) !== Boolean(flags.imageTlsKey)) throw new Error('--image-tls-cert and --image-tls-key go together');
  let key: Buffer;
  if (flags.imageSigningKeyFile) {
    key = Buffer.from(readFileSync(flags.imageSigningKeyFile, 'utf8').trim());
    if (key.length < 16) throw new Error(`${flags.imageSigningKeyFile}: the signing key must have at least 16 bytes`);
  } else {
    key = ImageUrlSigner.randomKey();
    logger.warn('no --image-signing-key-file: image URLs are signed with a random key and stop working when this process ends (fine for one replica; replicas must share a key)');
  }
  // Without a base URL (driver none) the signer only verifies: no URL is handed out.
  const signer = new ImageUrlSigner(key, flags.imageBaseUrl ?? 'http://image-server.invalid');
  return {
    signer,
    imageServer: {
      address: flags.imageServerAddress ?? ':8090',
      signer,
      ...(flags.imageTlsCert && flags.imageTlsKey ? { tls: { cert: readFileSync(flags.imageTlsCert), key: readFileSync(flags.imageTlsKey) } } : {}),
    },
  };
}

function kubevirtDelivery(flags: OperatorFlags, client: KubeClient, logger: Logger, metrics: OperatorMetrics, waitMs: number): Pick<OperatorOptions, 'driver' | 'imageServer'> {
  if (!flags.imageBaseUrl) throw new Error('--driver kubevirt needs --image-base-url: the URL under which CDI reaches this operator\'s image server (e.g. http://recontext-images.recontext.svc:8090)');
  const { signer, imageServer } = imageServing(flags, logger);
  return {
    driver: new KubeVirtDriver({
      client,
      logger: logger.child({ driver: 'kubevirt' }),
      metrics,
      imageUrl: (namespace, digest) => signer.url(namespace, digest),
      waitMs,
      watchTargetPods: flags.kubevirtTargetPods,
      ...(flags.namespace ? { namespace: flags.namespace } : {}),
      ...(flags.storageClass ? { storageClassName: flags.storageClass } : {}),
      ...(flags.accessMode ? { accessMode: flags.accessMode } : {}),
    }),
    imageServer,
  };
}

async function runStandalone(flags: OperatorFlags, concurrency: number, logger: Logger, metrics: OperatorMetrics): Promise<void> {
  if (!flags.dir) throw new Error('--standalone needs --dir <directory of manifests>');
  const hostsFile = flags.hosts ?? join(flags.dir, HOSTS_FILE);
  if (flags.hosts && !existsSync(flags.hosts)) throw new Error(`hosts file ${flags.hosts} does not exist`);
  const entries = existsSync(hostsFile) ? readHostsFile(hostsFile) : [];
  const hosts = resolveHosts(entries, flags.libvirt ?? [], (message) => logger.warn(message));
  const operator = new StandaloneOperator({
    directory: flags.dir,
    stateDirectory: flags.stateDir,
    ...(flags.imageDir ? { imageDirectory: flags.imageDir } : {}),
    driver: new LibvirtDriver(hosts, { log: (level, message, fields) => logger[level](message, fields) }),
    logger,
    metrics,
    concurrency,
    metricsAddress: flags.metricsAddress,
    policyMetrics: policyMetrics(flags),
    exclude: [hostsFile],
  });
  stopOnSignals(operator, logger);
  logger.info('starting standalone', { dir: flags.dir, stateDir: flags.stateDir, hosts: hosts.map((h) => `${h.name}=${h.socketPath}`) });
  await operator.start();
  await new Promise(() => {}); // runs until a signal stops it
}

function stopOnSignals(operator: { stop(): Promise<void> }, logger: Logger): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping', { signal });
    operator.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
