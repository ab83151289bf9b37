// `recontext operator`: the controller process against a Kubernetes API server.
import { Command, Option } from 'commander';
import { createLogger, type Level } from '../controllers/log.js';
import { Operator } from '../controllers/manager.js';
import { OperatorMetrics } from '../controllers/metrics.js';
import { ImagesOnlyDriver } from '../drivers/none.js';
import { KubeClient } from '../kube/client.js';

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
  imageDir: string;
  driver: 'none';
  logLevel: Level;
}

const env = (name: string) => process.env[name] || undefined;

export function operatorCommand(): Command {
  return new Command('operator')
    .description('Run the operator: reconcile ContextLayers and VMContexts into layer images and deliver them to VMs.')
    .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account)', env('KUBECONFIG'))
    .option('-n, --namespace <namespace>', 'watch only this namespace (default: all namespaces) [env RECONTEXT_NAMESPACE]', env('RECONTEXT_NAMESPACE'))
    .option('--concurrency <n>', 'workers per controller', env('RECONTEXT_CONCURRENCY') ?? '4')
    .option('--metrics-address <host:port>', 'serve /healthz, /readyz and /metrics here', env('RECONTEXT_METRICS_ADDRESS') ?? ':8080')
    .option('--no-leader-elect', 'reconcile without a leader lease (only when a single replica runs)')
    .option('--lease-namespace <namespace>', 'namespace of the leader lease (default: --namespace, else "default")', env('RECONTEXT_LEASE_NAMESPACE'))
    .option('--lease-duration <ms>', 'how long a lease lasts without renewal; a standby takes over after it', '15000')
    .option('--renew-deadline <ms>', 'the leader steps down when it cannot renew for this long', '10000')
    .option('--retry-period <ms>', 'how often the lease is renewed or tried', '2000')
    .option('--watchdog <ms>', 'restart a watch that delivered nothing, not even a bookmark, for this long', '90000')
    .option('--image-dir <dir>', 'content-addressed image store', env('RECONTEXT_IMAGE_DIR') ?? '/var/lib/recontext/images')
    .addOption(new Option('--driver <name>', 'how images reach VMs: none = build and record only (libvirt and kubevirt attach them: coming)').choices(['none']).default('none'))
    .addOption(new Option('--log-level <level>', 'log level').choices(['debug', 'info', 'warn', 'error']).default(env('RECONTEXT_LOG_LEVEL') ?? 'info'))
    .addHelpText('after', '\nLogs are JSON lines on stderr. SIGTERM/SIGINT stop it cleanly (the leader lease is released).')
    .action(async (flags: OperatorFlags) => {
      const logger = createLogger({ level: flags.logLevel });
      const metrics = new OperatorMetrics();
      const concurrency = Number(flags.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`--concurrency must be a positive integer, got ${flags.concurrency}`);
      const millis = (name: string, value: string) => {
        const n = Number(value);
        if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive number of milliseconds, got ${value}`);
        return n;
      };
      const client = KubeClient.fromKubeconfig(flags.kubeconfig, { onRequest: (verb, code) => metrics.kubeRequests.inc({ verb, code: String(code) }) });
      const operator = new Operator({
        client,
        driver: new ImagesOnlyDriver(client),
        logger,
        metrics,
        imageDirectory: flags.imageDir,
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
      logger.info('starting', { server: client.server, namespace: flags.namespace ?? '(all)', driver: flags.driver, imageDir: flags.imageDir });
      await operator.start();
      await new Promise(() => {}); // runs until a signal stops it
    });
}
