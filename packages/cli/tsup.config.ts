import { vrepaTsup } from '../../tsup.shared.ts';

// One build for the library and the `vrepa` binary (src/cli.ts keeps its #! line; esbuild preserves it).
// A single config avoids two parallel builds racing on `clean`.
export default vrepaTsup({
  entry: { index: 'src/index.ts', cli: 'src/cli.ts' },
  dts: { entry: { index: 'src/index.ts' } },
});
