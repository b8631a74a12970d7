// The build every vrepa package shares: ESM + CJS + .d.ts/.d.cts from src/index.ts, for node 20.
import { defineConfig, type Options } from 'tsup';

export const libraryOptions: Options = {
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  target: 'node20',
  clean: true,
  sourcemap: true,
  shims: true,
};

export function vrepaTsup(overrides: Options = {}) {
  return defineConfig({ ...libraryOptions, ...overrides });
}

/**
 * A package with a browser entry too: src/browser.ts (what needs no Node built-in) is built beside
 * src/index.ts and served through the `browser` export condition.
 */
export function vrepaTsupWithBrowser(overrides: Options = {}) {
  return vrepaTsup({ entry: ['src/index.ts', 'src/browser.ts'], ...overrides });
}
