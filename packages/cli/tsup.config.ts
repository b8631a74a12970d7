import { defineConfig } from 'tsup';

// One build for the library and the `vrepa` binary (src/cli.ts keeps its #! line; esbuild preserves it).
// A single config avoids two parallel builds racing on `clean`.
export default defineConfig({
  entry: { index: 'src/index.ts', cli: 'src/cli.ts' },
  format: ['esm', 'cjs'],
  dts: { entry: { index: 'src/index.ts' } },
  target: 'node20',
  clean: true,
  sourcemap: true,
  shims: true,
});
