import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // Integration tests start real processes (ISO readers, API server, QEMU): give them room.
    testTimeout: 60_000,
    hookTimeout: 600_000,
    globalSetup: ['test/setup/global.ts', 'test/setup/controlplane.ts', 'test/setup/testbed.ts', 'test/setup/cluster.ts'],
    reporters: ['default'],
  },
});
