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
    .option('--image-dir <dir>', 'content-addressed image store', env('RECONTEXT_IMAGE_DIR') ?? '/var/lib/recontext/images')
    .addOption(new Option('--driver <name>', 'how images reach VMs: none = build and record only (libvirt and kubevirt attach them: coming)').choices(['none']).default('none'))
    .addOption(new Option('--log-level <level>', 'log level').choices(['debug', 'info', 'warn', 'error']).default(env('RECONTEXT_LOG_LEVEL') ?? 'info'))
    .addHelpText('after', '\nLogs are JSON lines on stderr. SIGTERM/SIGINT stop it cleanly (the leader lease is released).')
    .action(async (flags: OperatorFlags) => {
      const logger = createLogger({ level: flags.logLevel });
      const metrics = new OperatorMetrics();
      const concurrency = Number(flags.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`--concurrency must be a positive integer, got ${flags.concurrency}`);
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
