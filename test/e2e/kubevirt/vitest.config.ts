// npm run e2e:kubevirt — recontext on real KubeVirt + CDI in the local kind cluster (README.md
// here). Not part of `npm test`: it needs KubeVirt's and CDI's images, built outside this
// repository, and takes tens of minutes under QEMU's emulation.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/e2e/kubevirt/**/*.e2e.ts'],
    testTimeout: 600_000,
    hookTimeout: 3_600_000,
    // One VM through one story: the files run one after the other.
    fileParallelism: false,
    globalSetup: ['test/e2e/kubevirt/setup.ts'],
    reporters: ['default'],
  },
});
