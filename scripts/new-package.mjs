// Scaffolds packages/<name> with the shared build/test/check layout. Usage: node scripts/new-package.mjs name "description" [deps...]
import fs from 'node:fs';
import path from 'node:path';
const [name, description, ...deps] = process.argv.slice(2);
const dir = path.join('packages', name);
fs.mkdirSync(path.join(dir, 'src'), { recursive: true });
const pkg = {
  name: `@vrepa/${name}`,
  version: '0.0.0',
  description,
  license: 'Apache-2.0',
  type: 'module',
  sideEffects: false,
  main: './dist/index.cjs',
  module: './dist/index.js',
  types: './dist/index.d.ts',
  exports: {
    '.': {
      import: { types: './dist/index.d.ts', default: './dist/index.js' },
      require: { types: './dist/index.d.cts', default: './dist/index.cjs' },
    },
    './package.json': './package.json',
  },
  files: ['dist', 'README.md'],
  engines: { node: '>=20.11' },
  scripts: {
    build: 'tsup',
    typecheck: 'tsc -p tsconfig.json',
    test: 'vitest run',
    check: 'publint --strict && attw --pack . --profile node16',
    bench: 'tsx bench/run.ts',
  },
  dependencies: Object.fromEntries(deps.map((d) => [d, d.startsWith('@vrepa/') ? 'workspace:*' : 'catalog:'])),
  devDependencies: {
    '@types/node': 'catalog:',
    'fast-check': 'catalog:',
    tsup: 'catalog:',
    tsx: 'catalog:',
    typescript: 'catalog:',
    vitest: 'catalog:',
    publint: 'catalog:',
    '@arethetypeswrong/cli': 'catalog:',
  },
  publishConfig: { access: 'public' },
};
if (!fs.existsSync(path.join(dir, 'package.json'))) fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
fs.writeFileSync(path.join(dir, 'tsup.config.ts'), `import { vrepaTsup } from '../../tsup.shared.ts';\n\nexport default vrepaTsup();\n`);
fs.writeFileSync(
  path.join(dir, 'tsconfig.json'),
  JSON.stringify({ extends: '../../tsconfig.base.json', include: ['src', 'bench', '*.ts'] }, null, 2) + '\n',
);
fs.writeFileSync(
  path.join(dir, 'vitest.config.ts'),
  `import { vrepaVitestConfig } from '../../vitest.shared.ts';\n\nexport default vrepaVitestConfig(import.meta.dirname);\n`,
);
if (!fs.existsSync(path.join(dir, 'src/index.ts'))) fs.writeFileSync(path.join(dir, 'src/index.ts'), `export {};\n`);
if (!fs.existsSync(path.join(dir, 'README.md'))) fs.writeFileSync(path.join(dir, 'README.md'), `# @vrepa/${name}\n\n${description}\n`);
