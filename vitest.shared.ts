// Shared vitest settings: workspace packages resolve to their sources, so tests run without a build,
// and every test file starts on the backend initBackend() picks (VREPA_BACKEND overrides).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = path.dirname(fileURLToPath(import.meta.url));
const packages = ['core', 'relations', 'align-dims', 'teachers', 'cogvideox', 'eval', 'trainer', 'cli'];

export function vrepaVitestConfig(_dir: string) {
  return defineConfig({
    resolve: {
      alias: packages.map((p) => ({
        find: new RegExp(`^@vrepa/${p}$`),
        replacement: path.join(root, 'packages', p, 'src', 'index.ts'),
      })),
    },
    test: {
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      setupFiles: [path.join(root, 'vitest.setup.ts')],
      testTimeout: 120_000,
      hookTimeout: 120_000,
      pool: 'forks',
    },
  });
}
