#!/usr/bin/env node
// The consumer-side package test (`pnpm test:pack`): install the packages the way users do and use them.
//
//   1. `pnpm pack` every package under packages/ (pnpm rewrites `workspace:*` and `catalog:` to versions);
//      the packed package.json must keep no `workspace:`/`catalog:` specifier and the tarball no sources.
//   2. An empty project installs all tarballs with plain npm (overrides pin each @vrepa package to its
//      tarball, so nothing named @vrepa comes from the registry); the optional native peers
//      @tensorflow/tfjs-node(-gpu) must NOT get installed.
//   3. Each package is imported from ESM and required from CJS in a fresh node process; both must
//      expose exactly the value exports its published .d.ts / .d.cts declare (read with the TypeScript
//      compiler API), and the package's `bin` entries must answer `--help`.
//   4. Each package's README example runs, in the empty project, against the installed tarballs.
//   5. Each package with a `browser` export condition is bundled from the installed tarballs the way a web
//      app does (esbuild, platform 'browser'; scripts/browser-bundle.mjs): it must bundle, and no Node
//      built-in may reach the bundle. Its min+gzip size (tfjs excluded) is printed.
//
// README example convention: the fenced code block right after a line `<!-- example -->` is the
// example (several marked blocks run in order). Without any marker, the first js/ts block in a section
// whose heading mentions "example" is run. Languages: `js`/`mjs`/`javascript` run as an ES module,
// `ts`/`typescript` run as an ES module after their types are stripped (TypeScript transpileModule),
// `sh`/`bash`/`shell` run with bash (`set -euo pipefail`) with the project's node_modules/.bin on PATH.
// Each runs in the project's directory, with a fresh temp dir in $VREPA_EXAMPLE_TMP, and must exit 0
// within the time limit. Every package needs at least one example.
//
// Usage: node scripts/pack-test.mjs [--only NAME]... [--keep] [--timeout SECONDS]
// Needs the packages built (`pnpm build`). Fails loudly: each failure names the package and the step.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { bundleBrowserEntry, kib } from './browser-bundle.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const requireFromRoot = createRequire(path.join(root, 'package.json'));
const ts = requireFromRoot('typescript');

const { values: opts } = parseArgs({
  options: {
    only: { type: 'string', multiple: true },
    keep: { type: 'boolean' },
    timeout: { type: 'string', default: '120' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (opts.help) {
  process.stdout.write(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n') + '\n');
  process.exit(0);
}
const exampleTimeoutMs = Number(opts.timeout) * 1000;

const t0 = performance.now();
const failures = [];
/** results[pkg][step] = 'ok' | 'FAIL' | 'skip' */
const results = new Map();

function log(msg) {
  process.stdout.write(`[pack-test] ${msg}\n`);
}
function mark(pkg, step, ok, detail) {
  if (!results.has(pkg)) results.set(pkg, {});
  results.get(pkg)[step] = ok ? 'ok' : 'FAIL';
  if (!ok) {
    failures.push(`${pkg} · ${step}: ${detail}`);
    log(`FAIL ${pkg} · ${step}: ${detail}`);
  }
}
function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return { code: r.status ?? (r.signal ? 128 : 1), signal: r.signal, output, stdout: r.stdout ?? '', error: r.error };
}
function tail(text, n = 15) {
  const lines = text.trim().split('\n');
  return lines.slice(-n).map((l) => `      ${l}`).join('\n');
}

// ---- 0. the packages ------------------------------------------------------------------------------
const pkgDirs = fs
  .readdirSync(path.join(root, 'packages'))
  .map((d) => path.join(root, 'packages', d))
  .filter((d) => fs.existsSync(path.join(d, 'package.json')));
// Every package is packed and installed (they depend on each other); --only limits the checks.
const packages = pkgDirs
  .map((dir) => ({ dir, json: JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) }))
  .filter((p) => !p.json.private);
const selected = (p) => !opts.only?.length || opts.only.some((o) => p.json.name === o || p.json.name === `@vrepa/${o}`);
if (!packages.some(selected)) {
  log(`no package matches --only ${opts.only.join(', ')}`);
  process.exit(1);
}
for (const p of packages) {
  if (!fs.existsSync(path.join(p.dir, 'dist'))) {
    log(`${p.json.name} has no dist/: build first (pnpm build)`);
    process.exit(1);
  }
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-pack-test-'));
const tarballs = path.join(work, 'tarballs');
const project = path.join(work, 'project');
fs.mkdirSync(tarballs);
fs.mkdirSync(project);
log(`work dir ${work}`);

// ---- 1. pack ----------------------------------------------------------------------------------------
// native-patches/*.patch: @vrepa/core's binding patches, applied by `vrepa backend install-native` from the installed package.
const ALLOWED_IN_TARBALL = /^package\/(dist\/|README\.md$|package\.json$|LICENSE|CHANGELOG\.md$|native-patches\/[\w.-]+\.patch$)/;
for (const p of packages) {
  const name = p.json.name;
  const before = new Set(fs.readdirSync(tarballs));
  const r = run('pnpm', ['pack', '--pack-destination', tarballs], { cwd: p.dir });
  const made = fs.readdirSync(tarballs).filter((f) => !before.has(f) && f.endsWith('.tgz'));
  if (r.code !== 0 || made.length !== 1) {
    mark(name, 'pack', false, `pnpm pack exited ${r.code}, made ${made.length} tarballs\n${tail(r.output)}`);
    continue;
  }
  p.tarball = path.join(tarballs, made[0]);
  const list = run('tar', ['-tzf', p.tarball]);
  const stray = list.stdout.split('\n').filter((l) => l && !ALLOWED_IN_TARBALL.test(l));
  const packed = JSON.parse(run('tar', ['-xzOf', p.tarball, 'package/package.json']).stdout);
  const specs = ['dependencies', 'peerDependencies', 'optionalDependencies']
    .flatMap((k) => Object.entries(packed[k] ?? {}))
    .filter(([, v]) => /^(workspace|catalog):/.test(String(v)));
  if (stray.length) mark(name, 'pack', false, `tarball holds files outside dist/README/native-patches: ${stray.slice(0, 5).join(', ')}`);
  else if (specs.length) mark(name, 'pack', false, `packed package.json keeps ${specs.map(([k, v]) => `${k}@${v}`).join(', ')}`);
  else mark(name, 'pack', true);
}
const packedPkgs = packages.filter((p) => p.tarball);

// ---- 2. install into an empty project with plain npm ----------------------------------------------
const deps = Object.fromEntries(packedPkgs.map((p) => [p.json.name, `file:${path.relative(project, p.tarball)}`]));
fs.writeFileSync(
  path.join(project, 'package.json'),
  JSON.stringify({ name: 'vrepa-consumer', version: '1.0.0', private: true, dependencies: deps, overrides: deps }, null, 2),
);
log(`npm install of ${packedPkgs.length} tarballs …`);
const tInstall = performance.now();
const install = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd: project });
log(`npm install: exit ${install.code} in ${((performance.now() - tInstall) / 1000).toFixed(1)} s`);
if (install.code !== 0) {
  for (const p of packedPkgs) mark(p.json.name, 'install', false, `npm install exited ${install.code}\n${tail(install.output)}`);
  finish();
}
for (const native of ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu']) {
  if (fs.existsSync(path.join(project, 'node_modules', native))) {
    mark('(project)', 'install', false, `${native} got installed: it must stay an optional peer, loaded only when the user installs it`);
  }
}
for (const p of packedPkgs) {
  const installed = path.join(project, 'node_modules', ...p.json.name.split('/'), 'package.json');
  const ok = fs.existsSync(installed) && JSON.parse(fs.readFileSync(installed, 'utf8')).version === p.json.version;
  mark(p.json.name, 'install', ok, `not installed from its tarball (${installed})`);
}

// ---- 3. ESM import, CJS require, declared exports, bins --------------------------------------------
/** Value exports declared by each types entry (TypeScript compiler API on the installed files). */
function declaredValueExports(files) {
  const program = ts.createProgram(files, {
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    types: [],
  });
  const checker = program.getTypeChecker();
  const out = new Map();
  for (const file of files) {
    const sf = program.getSourceFile(file);
    const sym = sf && checker.getSymbolAtLocation(sf);
    if (!sym) {
      out.set(file, sf ? [] : undefined); // a file with no exports has no module symbol
      continue;
    }
    const names = [];
    for (const e of checker.getExportsOfModule(sym)) {
      const typeOnly = (e.declarations ?? []).some(
        (d) => (ts.isExportSpecifier(d) && (d.isTypeOnly || d.parent?.parent?.isTypeOnly)) || (ts.isImportSpecifier?.(d) && d.isTypeOnly),
      );
      if (typeOnly) continue;
      const target = e.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(e) : e;
      if (target.flags & ts.SymbolFlags.Value) names.push(e.name);
    }
    out.set(file, names.sort());
  }
  return out;
}

function typesEntry(pkgJson, condition) {
  const dot = pkgJson.exports?.['.'];
  const branch = dot?.[condition];
  return typeof branch === 'object' ? branch.types : undefined;
}

const typeFiles = [];
for (const p of packedPkgs) {
  const dir = path.join(project, 'node_modules', ...p.json.name.split('/'));
  p.installedDir = dir;
  for (const cond of ['import', 'require']) {
    const t = typesEntry(p.json, cond);
    if (t) typeFiles.push((p[`${cond}Types`] = path.join(dir, t)));
  }
}
const declared = declaredValueExports(typeFiles.filter((f) => fs.existsSync(f)));

for (const p of packedPkgs.filter(selected)) {
  const name = p.json.name;
  const esm = run(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(name)}); console.log(JSON.stringify(Object.keys(m).filter((k) => k !== 'default').sort()));`], { cwd: project });
  const cjs = run(process.execPath, ['-e', `console.log(JSON.stringify(Object.keys(require(${JSON.stringify(name)})).sort()));`], { cwd: project });
  const lastJson = (r) => {
    try {
      return JSON.parse(r.stdout.trim().split('\n').pop());
    } catch {
      return undefined;
    }
  };
  const esmNames = esm.code === 0 ? lastJson(esm) : undefined;
  const cjsNames = cjs.code === 0 ? lastJson(cjs) : undefined;
  mark(name, 'esm import', Array.isArray(esmNames), `import('${name}') failed (exit ${esm.code})\n${tail(esm.output)}`);
  mark(name, 'cjs require', Array.isArray(cjsNames), `require('${name}') failed (exit ${cjs.code})\n${tail(cjs.output)}`);
  const check = (label, runtime, typesFile) => {
    if (!runtime) return;
    const want = typesFile ? declared.get(typesFile) : undefined;
    if (!want) {
      mark(name, `${label} exports`, false, `no types for the ${label} entry (${typesFile ?? 'exports["."] has no types'})`);
      return;
    }
    const missing = want.filter((n) => !runtime.includes(n));
    const extra = runtime.filter((n) => !want.includes(n));
    mark(
      name,
      `${label} exports`,
      missing.length === 0 && extra.length === 0,
      `${label} runtime exports differ from ${path.relative(p.installedDir, typesFile)}: missing at runtime [${missing.join(', ')}], undeclared [${extra.join(', ')}]`,
    );
  };
  check('esm', esmNames, p.importTypes);
  check('cjs', cjsNames, p.requireTypes);
  if (esmNames && cjsNames && esmNames.join() !== cjsNames.join()) {
    mark(name, 'esm = cjs', false, `ESM exports [${esmNames.join(', ')}] differ from CJS [${cjsNames.join(', ')}]`);
  }
  if (esmNames) log(`${name}: ${esmNames.length} exports${esmNames.length === 0 ? ' (nothing yet)' : ''}, ESM and CJS checked against the .d.ts/.d.cts`);
  const bins = typeof p.json.bin === 'string' ? { [p.json.name.split('/').pop()]: p.json.bin } : (p.json.bin ?? {});
  for (const bin of Object.keys(bins)) {
    const r = run(path.join(project, 'node_modules', '.bin', bin), ['--help'], { cwd: project, timeout: 60_000 });
    mark(name, `bin ${bin}`, r.code === 0 && r.stdout.includes('Usage'), `\`${bin} --help\` exited ${r.code}\n${tail(r.output)}`);
  }
}

// ---- 3b. the conformance suite through the installed `vrepa` (handlers as published, npm layout) ------
const fixtures = process.env.VREPA_FIXTURES ?? path.join(root, '..', 'shared', 'fixtures');
const cliPkg = packedPkgs.find((p) => p.json.bin && Object.keys(typeof p.json.bin === 'string' ? { x: 1 } : p.json.bin).includes('vrepa'));
if (cliPkg && selected(cliPkg) && fs.existsSync(path.join(fixtures, 'index.json'))) {
  const report = path.join(work, 'conformance.json');
  const started = performance.now();
  const r = run(path.join(project, 'node_modules', '.bin', 'vrepa'), ['conformance', fixtures, '--json', report], { cwd: project, timeout: 300_000 });
  let summary = '';
  try {
    const j = JSON.parse(fs.readFileSync(report, 'utf8'));
    const ran = j.results.filter((x) => x.handled);
    summary = `${ran.filter((x) => x.pass).length}/${ran.length} handled sub-cases pass on ${j.backend}, ${j.unhandled_cases.length} cases without a handler`;
  } catch {
    summary = 'no JSON report';
  }
  log(`vrepa conformance (installed): exit ${r.code}, ${summary}, ${((performance.now() - started) / 1000).toFixed(1)} s`);
  mark(cliPkg.json.name, 'conformance', r.code === 0, `\`vrepa conformance ${fixtures}\` from the installed packages exited ${r.code} (${summary})\n${tail(r.output, 25)}`);
} else if (cliPkg && selected(cliPkg)) log(`no fixture set at ${fixtures} (set VREPA_FIXTURES): conformance step skipped`);

// ---- 4. README examples ----------------------------------------------------------------------------
/** Fallback without a marker: the first js/ts block in a section whose heading mentions "example". */
function exampleSectionBlock(readme) {
  let inExample = false;
  const lines = readme.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const h = /^#{1,6}\s+(.*)$/.exec(lines[i]);
    if (h) {
      inExample = /example/i.test(h[1]);
      continue;
    }
    const fence = /^\s*```([A-Za-z]*)/.exec(lines[i]);
    if (!fence) continue;
    const end = lines.findIndex((l, j) => j > i && /^\s*```\s*$/.test(l));
    if (end < 0) return [];
    const lang = fence[1].toLowerCase();
    if (inExample && ['js', 'mjs', 'javascript', 'ts', 'typescript'].includes(lang)) return [{ lang, code: lines.slice(i + 1, end).join('\n') }];
    i = end;
  }
  return [];
}

const EXAMPLE = /<!--\s*example\s*-->\s*\n\s*```([A-Za-z]*)[^\n]*\n([\s\S]*?)\n\s*```/g;
for (const p of packedPkgs.filter(selected)) {
  const name = p.json.name;
  const readmePath = path.join(p.installedDir, 'README.md');
  if (!fs.existsSync(readmePath)) {
    mark(name, 'readme example', false, 'README.md is not in the tarball');
    continue;
  }
  const readme = fs.readFileSync(readmePath, 'utf8');
  let blocks = [...readme.matchAll(EXAMPLE)].map((m) => ({ lang: m[1].toLowerCase(), code: m[2] }));
  if (!blocks.length) blocks = exampleSectionBlock(readme);
  if (!blocks.length) {
    mark(name, 'readme example', false, 'README.md has no example: put `<!-- example -->` on the line before a ```js, ```ts or ```sh block (or a ```ts block under an "Example" heading)');
    continue;
  }
  let ok = true;
  for (const [i, b] of blocks.entries()) {
    const base = path.join(project, `example-${name.replace(/[@/]/g, '_')}-${i}`);
    const tmp = fs.mkdtempSync(path.join(work, 'example-tmp-'));
    const env = { ...process.env, VREPA_EXAMPLE_TMP: tmp, PATH: `${path.join(project, 'node_modules', '.bin')}${path.delimiter}${process.env.PATH}` };
    let r;
    const started = performance.now();
    if (['js', 'mjs', 'javascript', 'ts', 'typescript'].includes(b.lang)) {
      const code = b.lang.startsWith('t')
        ? ts.transpileModule(b.code, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false } }).outputText
        : b.code;
      fs.writeFileSync(`${base}.mjs`, code);
      r = run(process.execPath, [`${base}.mjs`], { cwd: project, env, timeout: exampleTimeoutMs });
    } else if (['sh', 'bash', 'shell'].includes(b.lang)) {
      fs.writeFileSync(`${base}.sh`, `set -euo pipefail\n${b.code}\n`);
      r = run('bash', [`${base}.sh`], { cwd: project, env, timeout: exampleTimeoutMs });
    } else {
      mark(name, 'readme example', false, `example ${i + 1} is a \`${b.lang || 'plain'}\` block; use js, ts or sh`);
      ok = false;
      continue;
    }
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    if (r.code !== 0) {
      ok = false;
      mark(name, 'readme example', false, `example ${i + 1} (${b.lang}) ${r.signal ? `killed by ${r.signal} (timeout ${opts.timeout} s?)` : `exited ${r.code}`} after ${secs} s\n${tail(r.output)}`);
    } else log(`${name}: README example ${i + 1} (${b.lang}) ran in ${secs} s`);
  }
  if (ok) mark(name, 'readme example', true);
}

// ---- 5. browser bundles -----------------------------------------------------------------------------
for (const p of packedPkgs.filter((x) => selected(x) && x.json.exports?.['.']?.browser)) {
  const name = p.json.name;
  const r = await bundleBrowserEntry(name, project);
  const where = r.nodeImports.map((x) => `${x.spec} (imported by ${x.importer})`).join(', ');
  mark(name, 'browser bundle', !r.errors.length && !r.nodeImports.length, r.errors.length ? `its browser entry does not bundle: ${r.errors.slice(0, 3).join('; ')}` : `Node built-ins in its browser bundle: ${where}`);
  if (!r.errors.length) log(`${name}: browser bundle ${kib(r.minGzip)} min+gzip (tfjs excluded)${r.nodeImports.length ? `, NODE BUILT-INS: ${where}` : ', no Node built-ins'}`);
}

finish();

function finish() {
  const steps = [...new Set([...results.values()].flatMap((r) => Object.keys(r)))];
  const w = Math.max(...[...results.keys()].map((k) => k.length), 7);
  process.stdout.write(`\n${'package'.padEnd(w)}  ${steps.join('  ')}\n`);
  for (const [pkg, r] of results) {
    process.stdout.write(`${pkg.padEnd(w)}  ${steps.map((s) => (r[s] ?? '-').padEnd(s.length)).join('  ')}\n`);
  }
  const secs = ((performance.now() - t0) / 1000).toFixed(0);
  if (failures.length) {
    process.stdout.write(`\npack-test FAILED (${failures.length} problem${failures.length === 1 ? '' : 's'}, ${secs} s):\n${failures.map((f) => `  - ${f}`).join('\n')}\nwork dir kept: ${work}\n`);
    process.exit(1);
  }
  if (!opts.keep) fs.rmSync(work, { recursive: true, force: true });
  else log(`work dir kept: ${work}`);
  process.stdout.write(`\npack-test passed: ${packedPkgs.length} packages packed, installed with npm, imported (ESM + CJS) and their README examples run (${secs} s)\n`);
  process.exit(0);
}
