import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Tests start real child processes and servers; two cores cannot run many files at once.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
