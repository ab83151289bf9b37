// The Prometheus Operator's CRDs for ServiceMonitor and PrometheusRule, pinned, so the chart's
// monitoring objects are validated by a real API server against the real schemas. They come from
// the Go module proxy (`go mod download`: Go's module cache keeps them, keyed by version), the same
// way the control plane's sources do — no Prometheus Operator runs.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { findGo } from '../controlplane/build.js';
import { skipReason } from './skip.js';

export const PROMETHEUS_OPERATOR_MODULE = 'github.com/prometheus-operator/prometheus-operator';
export const PROMETHEUS_OPERATOR_VERSION = 'v0.85.0';

/** Why the CRDs cannot be had here (no Go toolchain), or undefined. */
export function prometheusOperatorCrdsSkipReason(): string | undefined {
  return skipReason('tests needing the Prometheus Operator CRDs', findGo() ? undefined : 'no Go toolchain', 'they come from the Go module proxy: install Go, or set RECONTEXT_GO');
}

/** Paths of the ServiceMonitor and PrometheusRule CRD manifests of the pinned release. */
export async function prometheusOperatorCrds(): Promise<string[]> {
  const go = findGo();
  if (!go) throw new Error(prometheusOperatorCrdsSkipReason());
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(go, ['mod', 'download', '-json', `${PROMETHEUS_OPERATOR_MODULE}@${PROMETHEUS_OPERATOR_VERSION}`], { env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '' }, cwd: '/', timeout: 300_000 }, (error, out, err) =>
      error ? reject(new Error(`go mod download ${PROMETHEUS_OPERATOR_MODULE}@${PROMETHEUS_OPERATOR_VERSION}: ${err || error.message}`)) : resolve(out),
    ),
  );
  const { Dir: dir } = JSON.parse(stdout) as { Dir: string };
  const files = ['servicemonitors', 'prometheusrules'].map((plural) => join(dir, 'example', 'prometheus-operator-crd', `monitoring.coreos.com_${plural}.yaml`));
  for (const file of files) if (!existsSync(file)) throw new Error(`${file} is not in ${PROMETHEUS_OPERATOR_MODULE}@${PROMETHEUS_OPERATOR_VERSION}`);
  return files;
}
