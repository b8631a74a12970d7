#!/usr/bin/env node
// Bundle packages' browser entries the way a web app does (esbuild, platform 'browser', so the `browser`
// export condition applies) and report every Node built-in that reaches the bundle, with the file that
// imports it. Sizes are minified + gzip, with @tensorflow/* left out (the app brings tfjs) and eval's
// physics engine (@dimforge/rapier2d-*, imported lazily when a scene is simulated) measured apart.
//
// Usage: node scripts/browser-bundle.mjs [--from DIR] [--markdown] [NAME...]
//   --from DIR   resolve the packages from DIR's node_modules (default: the workspace packages)
//   --markdown   print the size table as Markdown (for the README)
// Exit 1 when a browser bundle holds a Node built-in or does not build. Used by scripts/pack-test.mjs.
import { builtinModules, createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

export const BROWSER_PACKAGES = ['@vrepa/core', '@vrepa/relations', '@vrepa/align-dims', '@vrepa/teachers', '@vrepa/eval'];
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NODE_BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
const isBuiltin = (spec) => spec.startsWith('node:') || NODE_BUILTINS.has(spec) || NODE_BUILTINS.has(spec.split('/')[0]);
const LAZY_EXTERNAL = /^@dimforge\/rapier2d/;

/**
 * Bundle `name`'s browser entry, resolved from `fromDir`. Returns { name, nodeImports: [{spec, importer}],
 * errors: [string], bytes, minGzip, lazy: [spec] }.
 */
export async function bundleBrowserEntry(name, fromDir) {
  const esbuild = await loadEsbuild();
  const nodeImports = [];
  const lazy = new Set();
  const plugin = {
    name: 'vrepa-node-builtins',
    setup(build) {
      build.onResolve({ filter: /.*/ }, (args) => {
        if (args.kind === 'entry-point') return undefined;
        if (isBuiltin(args.path)) {
          nodeImports.push({ spec: args.path, importer: path.relative(fromDir, args.importer) || args.importer });
          return { path: args.path, external: true };
        }
        if (/^@tensorflow\//.test(args.path)) return { path: args.path, external: true };
        if (LAZY_EXTERNAL.test(args.path)) {
          lazy.add(args.path);
          return { path: args.path, external: true };
        }
        return undefined;
      });
    },
  };
  try {
    const r = await esbuild.build({
      stdin: { contents: `export * from ${JSON.stringify(name)};`, resolveDir: fromDir, loader: 'js' },
      bundle: true,
      write: false,
      minify: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      logLevel: 'silent',
      plugins: [plugin],
    });
    const out = r.outputFiles[0].contents;
    return { name, nodeImports, errors: [], bytes: out.length, minGzip: gzipSync(out, { level: 9 }).length, lazy: [...lazy] };
  } catch (e) {
    const errors = (e.errors ?? [{ text: String(e.message ?? e) }]).map((x) => `${x.text}${x.location ? ` (${x.location.file}:${x.location.line})` : ''}`);
    return { name, nodeImports, errors, bytes: 0, minGzip: 0, lazy: [...lazy] };
  }
}

/** Min+gzip of a package as the browser loads it lazily (e.g. rapier), for the table's note. */
export async function lazySize(spec, fromDir) {
  const esbuild = await loadEsbuild();
  const r = await esbuild.build({
    stdin: { contents: `export * from ${JSON.stringify(spec)};`, resolveDir: fromDir, loader: 'js' },
    bundle: true, write: false, minify: true, format: 'esm', platform: 'browser', target: 'es2022', logLevel: 'silent',
  });
  const out = r.outputFiles[0].contents;
  return { bytes: out.length, minGzip: gzipSync(out, { level: 9 }).length };
}

async function loadEsbuild() {
  // esbuild comes with tsup (a workspace devDependency); resolve it from there.
  const req = createRequire(createRequire(path.join(root, 'package.json')).resolve('tsup/package.json'));
  return import(req.resolve('esbuild'));
}

export function kib(n) {
  return `${(n / 1024).toFixed(1)} KiB`;
}

// ---- CLI -----------------------------------------------------------------------------------------------
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const fromIdx = args.indexOf('--from');
  const fromDir = fromIdx >= 0 ? path.resolve(args[fromIdx + 1]) : path.join(root, 'packages', 'cli');
  const markdown = args.includes('--markdown');
  const names = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--from');
  const list = names.length ? names.map((n) => (n.startsWith("@") || n.startsWith("/") || n.startsWith(".") ? n : `@vrepa/${n}`)) : BROWSER_PACKAGES;
  let bad = 0;
  const rows = [];
  for (const name of list) {
    const r = await bundleBrowserEntry(name, fromDir);
    if (r.errors.length || r.nodeImports.length) bad++;
    rows.push(r);
  }
  const lazyNotes = [];
  for (const spec of new Set(rows.flatMap((r) => r.lazy))) {
    const s = await lazySize(spec, path.join(root, 'packages', 'eval'));
    lazyNotes.push(`${spec}: ${kib(s.minGzip)} min+gzip, loaded on first scene simulation`);
  }
  if (markdown) {
    console.log('| package (browser entry) | minified | min+gzip | Node built-ins |');
    console.log('|---|---:|---:|---|');
    for (const r of rows) console.log(`| ${r.name} | ${kib(r.bytes)} | ${kib(r.minGzip)} | ${r.nodeImports.length ? r.nodeImports.map((x) => x.spec).join(', ') : 'none'} |`);
    if (lazyNotes.length) console.log(`\nNot counted: tfjs (the app's), and ${lazyNotes.join('; ')}.`);
  } else {
    for (const r of rows) {
      const state = r.errors.length ? `FAILS TO BUNDLE: ${r.errors.join('; ')}` : r.nodeImports.length ? `NODE BUILT-INS: ${r.nodeImports.map((x) => `${x.spec} (from ${x.importer})`).join(', ')}` : 'no Node built-ins';
      console.log(`${r.name.padEnd(18)} ${kib(r.bytes).padStart(10)} min, ${kib(r.minGzip).padStart(9)} min+gzip  ${state}`);
    }
    for (const n of lazyNotes) console.log(`(lazy) ${n}`);
  }
  process.exit(bad ? 1 : 0);
}
