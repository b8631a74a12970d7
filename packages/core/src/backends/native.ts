/**
 * The native backend installer: builds `@tensorflow/tfjs-node` (or `-gpu`) against the TensorFlow C library
 * taken from a TensorFlow pip wheel, for machines where the package's own install script cannot download
 * libtensorflow (offline labs, air-gapped clusters, pnpm installs that deny build scripts).
 *
 * The recipe (../shared/notes/tfjs-node-offline.md): the package is installed without its install script;
 * `pip download` fetches the wheel (cached under ~/.cache/vrepa/wheels); the two shared libraries and the
 * C API headers are extracted into the package's `deps/`; `node-pre-gyp install --build-from-source` builds
 * `lib/napi-v8/tfjs_binding.node` (run through npx so npm's `nodedir` applies); a smoke test in a child
 * process checks matMul, transposeB, batched matMul, conv2d and a gradient.
 *
 * Before building, core's binding patches (native-patches/*.patch, see native-patches.ts) are applied to
 * the package's C++ sources; their hash is recorded in deps/vrepa-native.json and a binding built with a
 * different patch set is rebuilt.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyNativePatches, listNativePatches, patchSetHash, type NativePatch } from './native-patches.js';

/** TensorFlow version whose C library the binding is built against by default. */
export const DEFAULT_TF_VERSION = '2.21.0';

export interface InstallNativeOptions {
  /** Build `@tensorflow/tfjs-node-gpu` against the CUDA `tensorflow` wheel instead of the CPU one. */
  gpu?: boolean;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
  /** Directory the package is resolved from (default: process.cwd(), then @vrepa/core's own location). */
  cwd?: string;
  /** Wheel cache (default: $VREPA_CACHE_DIR or $XDG_CACHE_HOME/vrepa or ~/.cache/vrepa). */
  cacheDir?: string;
  /** TensorFlow wheel version (default 2.21.0). */
  tfVersion?: string;
  /** Python interpreter that runs pip and zipfile (default: the first of $VREPA_PYTHON, python3, python with pip). */
  python?: string;
  /** Rebuild even when a working binding is already there. */
  force?: boolean;
  /** `${platform}-${arch}` to act as (tests of the unsupported-platform message); default this machine's. */
  platform?: string;
  /** Binding patches to apply (default: core's native-patches/*.patch). */
  patches?: NativePatch[];
}

export interface NativeSmokeResult {
  ok: boolean;
  /** TensorFlow C library version reported by the binding. */
  tfVersion?: string;
  backend?: string;
  /** One entry per check that failed. */
  failures: string[];
  /** Milliseconds to require the package. */
  loadMs?: number;
}

export interface InstallNativeResult {
  ok: boolean;
  /** npm package built. */
  package: string;
  packageDir?: string;
  /** What happened, or what went wrong and what to do, in one paragraph. */
  message: string;
  smoke?: NativeSmokeResult;
  /** True when a working binding was found and nothing was rebuilt. */
  alreadyBuilt?: boolean;
  seconds: number;
}

/** Headers the binding includes, as prefixes below the wheel's `tensorflow/include/`. */
const HEADER_PREFIXES = [
  'tensorflow/c/',
  'tensorflow/core/platform/ctstring',
  'tsl/platform/ctstring',
  'xla/tsl/c/',
];
const LIBS = ['libtensorflow_cc.so.2', 'libtensorflow_framework.so.2'];

export function vrepaCacheDir(): string {
  if (process.env.VREPA_CACHE_DIR) return process.env.VREPA_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'vrepa');
}

/** The directory of an installed npm package, resolved from `cwd` and then from @vrepa/core itself. */
export function findPackageDir(spec: string, cwd = process.cwd()): string | undefined {
  const bases = [path.join(path.resolve(cwd), 'noop.js'), here()];
  for (const base of bases) {
    try {
      return path.dirname(createRequire(base).resolve(`${spec}/package.json`));
    } catch {
      /* try the next base */
    }
  }
  return undefined;
}

function here(): string {
  // ESM and tsup's CJS shim both provide import.meta.url.
  try {
    return fileURLToPath(import.meta.url);
  } catch {
    return path.join(process.cwd(), 'noop.js');
  }
}

/** Where the built addon lives inside the package (napi v8 on node ≥ 18). */
export function nativeBindingPath(pkgDir: string): string {
  return path.join(pkgDir, 'lib', 'napi-v8', 'tfjs_binding.node');
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 600_000,
    maxBuffer: 64 * 2 ** 20,
  });
}

function tail(s: string | null | undefined, lines = 6): string {
  const all = (s ?? '').trim().split('\n').filter(Boolean);
  return all.slice(-lines).join(' | ');
}

function findPython(preferred?: string): string | undefined {
  const candidates = preferred ? [preferred] : ([process.env.VREPA_PYTHON, 'python3', 'python'].filter(Boolean) as string[]);
  for (const py of candidates) {
    const r = run(py, ['-m', 'pip', '--version'], { timeoutMs: 30_000 });
    if (r.status === 0) return py;
  }
  return undefined;
}

function hasCompiler(): string | undefined {
  for (const cxx of [process.env.CXX, 'g++', 'c++', 'clang++'].filter(Boolean) as string[]) {
    if (run(cxx, ['--version'], { timeoutMs: 10_000 }).status === 0) return cxx;
  }
  return undefined;
}

/**
 * Run the smoke test of a built binding in a child process (a tfjs backend registry is process-wide, so
 * loading tfjs-node here would switch the caller's backend). Checks exact small results.
 */
export function nativeSmokeTest(pkgDir: string, timeoutMs = 120_000): NativeSmokeResult {
  const script = `
const t0 = Date.now();
const tf = require(${JSON.stringify(pkgDir)});
const loadMs = Date.now() - t0;
const failures = [];
const eq = (name, got, want) => {
  const g = Array.from(got), bad = g.length !== want.length || g.some((v, i) => Math.abs(v - want[i]) > 1e-4);
  if (bad) failures.push(name + ': got [' + g.join(',') + '], expected [' + want.join(',') + ']');
};
try {
  const a = tf.tensor2d([[1, 2], [3, 4]]), b = tf.tensor2d([[5, 6], [7, 8]]);
  eq('matMul', tf.matMul(a, b).dataSync(), [19, 22, 43, 50]);
  eq('matMul transposeB', tf.matMul(a, b, false, true).dataSync(), [17, 23, 39, 53]);
  eq('matMul transposeA', tf.matMul(a, b, true, false).dataSync(), [26, 30, 38, 44]);
  eq('batched matMul', tf.matMul(tf.ones([2, 3, 4]), tf.ones([2, 4, 5])).dataSync(), new Array(30).fill(4));
  eq('conv2d', tf.conv2d(tf.ones([1, 5, 5, 1]), tf.ones([3, 3, 1, 1]), 1, 'valid').dataSync(), new Array(9).fill(9));
  eq('grad sum(x·xT)', tf.grad((v) => tf.sum(tf.matMul(v, v, false, true)))(a).dataSync(), [8, 12, 8, 12]);
} catch (e) { failures.push('threw: ' + String(e && e.message || e).split('\\n')[0]); }
let tfVersion;
try { tfVersion = tf.backend().binding.TF_Version; } catch {}
process.stdout.write('\\n@@VREPA@@' + JSON.stringify({ ok: failures.length === 0 && tf.getBackend() === 'tensorflow', backend: tf.getBackend(), failures, loadMs, tfVersion }) + '\\n');
`;
  const r = run(process.execPath, ['-e', script], {
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: process.env.TF_CPP_MIN_LOG_LEVEL ?? '2' },
    timeoutMs,
  });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('@@VREPA@@'));
  if (!line) {
    return { ok: false, failures: [`the child process failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}): ${tail(r.stderr, 3) || r.error?.message || 'no output'}`] };
  }
  const res = JSON.parse(line.slice('@@VREPA@@'.length)) as NativeSmokeResult;
  if (res.backend !== 'tensorflow') res.failures.push(`backend is '${res.backend}', expected 'tensorflow'`);
  res.tfVersion = res.tfVersion ?? readBindingTfVersion(pkgDir);
  return res;
}

/** The marker written next to a built binding: what it was built from. */
export interface NativeBuildMarker {
  tfVersion?: string;
  wheel?: string;
  builtAt?: string;
  gpu?: boolean;
  /** patchSetHash of the binding patches applied (absent: built before patches existed). */
  patches?: string;
  patchNames?: string[];
}

export function readNativeBuildMarker(pkgDir: string): NativeBuildMarker | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(pkgDir, 'deps', 'vrepa-native.json'), 'utf8')) as NativeBuildMarker;
  } catch {
    return undefined;
  }
}

/** The TensorFlow version of the C library in the package's deps/ (from the marker we write), if known. */
function readBindingTfVersion(pkgDir: string): string | undefined {
  return readNativeBuildMarker(pkgDir)?.tfVersion;
}

/** Is tfjs-node's own install script denied for the project around `cwd`? Returns a hint when not. */
export function installScriptHint(spec: string, cwd = process.cwd()): string | undefined {
  let dir = path.resolve(cwd);
  for (;;) {
    const ws = path.join(dir, 'pnpm-workspace.yaml');
    if (fs.existsSync(ws)) {
      const text = fs.readFileSync(ws, 'utf8');
      const re = new RegExp(`['"]?${spec.replace(/[/@-]/g, (c) => `\\${c}`)}['"]?\\s*:\\s*false`);
      return re.test(text) ? undefined : `add \`allowBuilds: { '${spec}': false }\` to ${ws} so pnpm never runs its download script`;
    }
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        const j = JSON.parse(fs.readFileSync(pj, 'utf8'));
        if (j.allowScripts && j.allowScripts[spec] === false) return undefined;
        if (j.pnpm?.allowBuilds?.[spec] === false) return undefined;
      } catch {
        /* ignore */
      }
      if (fs.existsSync(path.join(dir, 'package-lock.json')))
        return `run \`npm pkg set 'allowScripts[${spec}]=false' --json\` in ${dir} (npm 11) or install with --ignore-scripts, so npm never runs its download script`;
    }
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/**
 * Build the native TensorFlow backend for this machine. Never throws for an expected failure (unsupported
 * platform, package missing, no pip or compiler, failed download or build): `ok` is false and `message`
 * says what to do; the wasm backend keeps working either way.
 */
export async function installNative(opts: InstallNativeOptions = {}): Promise<InstallNativeResult> {
  const t0 = Date.now();
  const log = opts.log ?? ((s: string) => process.stderr.write(`[vrepa] ${s}\n`));
  const gpu = opts.gpu ?? false;
  const spec = gpu ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  const tfVersion = opts.tfVersion ?? DEFAULT_TF_VERSION;
  const wheelProject = gpu ? 'tensorflow' : 'tensorflow-cpu';
  const done = (ok: boolean, message: string, extra: Partial<InstallNativeResult> = {}): InstallNativeResult => ({
    ok,
    package: spec,
    message,
    seconds: (Date.now() - t0) / 1000,
    ...extra,
  });
  const fallback = 'The wasm backend stays in use.';

  const platform = opts.platform ?? `${process.platform}-${process.arch}`;
  if (platform !== 'linux-x64') {
    return done(
      false,
      `install-native supports linux-x64 only (this machine is ${platform}): the TensorFlow wheels it builds from are manylinux x86_64. ${fallback} On other platforms install ${spec} with its own install script where it can download, e.g. \`npm i ${spec}@4.22.0\`.`,
    );
  }
  const pkgDir = findPackageDir(spec, opts.cwd);
  if (!pkgDir) {
    return done(
      false,
      `${spec} is not installed where ${path.resolve(opts.cwd ?? process.cwd())} resolves packages. Install it without its download script first (pnpm: \`allowBuilds: { '${spec}': false }\` in pnpm-workspace.yaml, then \`pnpm add -D ${spec}@4.22.0\`; npm: \`npm i ${spec}@4.22.0 --ignore-scripts\`), then run install-native again. ${fallback}`,
    );
  }
  log(`${spec}: ${pkgDir}`);
  if (gpu) log('--gpu: builds against the CUDA tensorflow wheel; this path is untested on the machines vrepa is developed on (no GPU there). The CUDA 12 runtime libraries must be found at run time (e.g. `pip install "tensorflow[and-cuda]==' + tfVersion + '"` and LD_LIBRARY_PATH).');
  const hint = installScriptHint(spec, opts.cwd);
  if (hint) log(`warning: ${spec}'s install script is not denied here; ${hint}`);

  let patches: NativePatch[];
  try {
    patches = opts.patches ?? listNativePatches();
  } catch (e) {
    return done(false, `reading the binding patches failed: ${(e as Error).message}. ${fallback}`, { packageDir: pkgDir });
  }
  const patchHash = patchSetHash(patches);
  const binding = nativeBindingPath(pkgDir);
  const marker = readNativeBuildMarker(pkgDir);
  if (!opts.force && fs.existsSync(binding) && marker?.tfVersion === tfVersion && (marker.patches ?? patchSetHash([])) !== patchHash) {
    log(`the binding patches changed (${patches.map((p) => p.name).join(', ') || 'none'}); rebuilding`);
  } else if (!opts.force && fs.existsSync(binding) && marker?.tfVersion === tfVersion) {
    const smoke = nativeSmokeTest(pkgDir);
    if (smoke.ok) {
      return done(true, `${spec} is already built against TensorFlow ${smoke.tfVersion ?? tfVersion} and passes the smoke test (${binding}).`, {
        packageDir: pkgDir,
        smoke,
        alreadyBuilt: true,
      });
    }
    log(`existing binding fails the smoke test (${smoke.failures.join('; ')}); rebuilding`);
  }

  const python = findPython(opts.python);
  if (!python) {
    return done(false, `no Python with pip found (tried ${opts.python ?? '$VREPA_PYTHON, python3, python'}): install-native needs \`python3 -m pip\` to download the ${wheelProject} wheel and read it. Install Python 3 with pip, or set VREPA_PYTHON. ${fallback}`, { packageDir: pkgDir });
  }
  const cxx = hasCompiler();
  if (!cxx) {
    return done(false, `no C++ compiler found (tried $CXX, g++, c++, clang++): the binding is compiled from source. Install one (Debian/Ubuntu: \`apt-get install -y g++ make\`). ${fallback}`, { packageDir: pkgDir });
  }

  // 1. The wheel, cached.
  const wheelDir = path.join(opts.cacheDir ?? vrepaCacheDir(), 'wheels');
  fs.mkdirSync(wheelDir, { recursive: true });
  const wheelPrefix = `${wheelProject.replace(/-/g, '_')}-${tfVersion}-`;
  const findWheel = () => fs.readdirSync(wheelDir).find((f) => f.startsWith(wheelPrefix) && f.endsWith('.whl'));
  let wheel = findWheel();
  if (wheel) {
    log(`wheel (cached): ${path.join(wheelDir, wheel)}`);
  } else {
    log(`downloading ${wheelProject}==${tfVersion} with pip (about 275 MB for the CPU wheel)...`);
    const r = run(python, [
      '-m', 'pip', 'download', `${wheelProject}==${tfVersion}`, '--no-deps', '--only-binary=:all:',
      '--python-version', '3.11', '--platform', 'manylinux_2_27_x86_64', '--platform', 'manylinux2014_x86_64',
      '-d', wheelDir, '--disable-pip-version-check',
    ]);
    wheel = findWheel();
    if (r.status !== 0 || !wheel) {
      return done(false, `pip could not download ${wheelProject}==${tfVersion} (exit ${r.status}): ${tail(r.stderr, 3) || r.error?.message}. Check that pip reaches an index with that wheel (pip.conf / PIP_INDEX_URL / PIP_FIND_LINKS), or put the .whl file into ${wheelDir} and run install-native again. ${fallback}`, { packageDir: pkgDir });
    }
    log(`wheel: ${path.join(wheelDir, wheel)}`);
  }

  // 2. Libraries and headers into deps/ (Python's zipfile; no unzip needed).
  const deps = path.join(pkgDir, 'deps');
  const extract = `
import sys, zipfile, os, shutil
whl, deps, prefixes, libs = sys.argv[1], sys.argv[2], sys.argv[3].split(','), sys.argv[4].split(',')
n = 0
with zipfile.ZipFile(whl) as z:
    names = set(z.namelist())
    for lib in libs:
        src = 'tensorflow/' + lib
        if src not in names:
            sys.exit('the wheel has no ' + src)
        dst = os.path.join(deps, 'lib', lib)
        info = z.getinfo(src)
        if os.path.exists(dst) and os.path.getsize(dst) == info.file_size:
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with z.open(src) as f, open(dst + '.part', 'wb') as g:
            shutil.copyfileobj(f, g, 16 << 20)
        os.replace(dst + '.part', dst)
        n += 1
    for name in names:
        if not name.startswith('tensorflow/include/') or name.endswith('/'):
            continue
        rel = name[len('tensorflow/include/'):]
        if not any(rel.startswith(p) for p in prefixes):
            continue
        dst = os.path.join(deps, 'include', rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with z.open(name) as f, open(dst, 'wb') as g:
            shutil.copyfileobj(f, g)
print(n)
`;
  log('extracting libtensorflow_cc.so.2, libtensorflow_framework.so.2 and the C API headers into deps/ ...');
  const x = run(python, ['-c', extract, path.join(wheelDir, wheel), deps, HEADER_PREFIXES.join(','), LIBS.join(',')]);
  if (x.status !== 0) {
    return done(false, `extracting the TensorFlow libraries from ${wheel} failed: ${tail(x.stderr, 3)}. Delete ${path.join(wheelDir, wheel)} (it may be truncated) and run install-native again. ${fallback}`, { packageDir: pkgDir });
  }
  const lib = path.join(deps, 'lib');
  // libtensorflow.so / _framework.so for the linker; libtensorflow.so.2.9.1 makes the package's own install
  // script believe its download is present, so a later `npm rebuild` rebuilds instead of wiping deps/.
  for (const [link, target] of [
    ['libtensorflow.so', 'libtensorflow_cc.so.2'],
    ['libtensorflow_framework.so', 'libtensorflow_framework.so.2'],
    ['libtensorflow.so.2.9.1', 'libtensorflow_cc.so.2'],
  ] as const) {
    const p = path.join(lib, link);
    fs.rmSync(p, { force: true });
    fs.symlinkSync(target, p);
  }

  // 3. The binding patches, onto new inodes (the package's files are hard links into pnpm's store).
  try {
    const written = applyNativePatches(pkgDir, patches);
    log(`binding patches: ${patches.map((p) => p.name).join(', ') || 'none'} (${written.length} file(s) written)`);
  } catch (e) {
    return done(false, `applying the binding patches failed: ${(e as Error).message}. ${fallback}`, { packageDir: pkgDir });
  }

  // 4. Build the addon through npx so npm's nodedir setting reaches node-gyp (no header download).
  log(`building ${path.relative(pkgDir, binding)} with node-pre-gyp (${cxx}) ...`);
  fs.rmSync(path.join(pkgDir, 'build'), { recursive: true, force: true });
  const b = run('npx', ['--no-install', 'node-pre-gyp', 'install', '--build-from-source'], { cwd: pkgDir });
  if (b.status !== 0 || !fs.existsSync(binding)) {
    const out = `${b.stdout ?? ''}\n${b.stderr ?? ''}`;
    const why = /network|ENOTFOUND|EAI_AGAIN|download/i.test(out)
      ? 'node-gyp tried to download the Node.js headers; point npm at installed headers (`npm config set nodedir /usr` when /usr/include/node exists, or install the nodejs headers package)'
      : /not found|No such file/i.test(out) && /make|g\+\+|python/i.test(out)
        ? 'a build tool is missing (node-gyp needs python3, make and a C++ compiler)'
        : 'see the compiler output above';
    return done(false, `building the ${spec} binding failed (exit ${b.status}): ${tail(out, 4)}. ${why}. ${fallback}`, { packageDir: pkgDir });
  }
  const newMarker: NativeBuildMarker = { tfVersion, wheel, builtAt: new Date().toISOString(), gpu, patches: patchHash, patchNames: patches.map((p) => p.name) };
  fs.writeFileSync(path.join(deps, 'vrepa-native.json'), JSON.stringify(newMarker, null, 2));

  // 5. Verify in a child process.
  log('smoke test (matMul, transposes, batched matMul, conv2d, gradient) in a child process ...');
  const smoke = nativeSmokeTest(pkgDir);
  if (!smoke.ok) {
    return done(false, `the ${spec} binding was built but fails its smoke test: ${smoke.failures.join('; ')}. ${fallback}`, { packageDir: pkgDir, smoke });
  }
  return done(true, `${spec} built against TensorFlow ${tfVersion} (${wheel}) and verified; initBackend now picks the 'tensorflow' backend (VREPA_BACKEND=wasm selects wasm).`, {
    packageDir: pkgDir,
    smoke,
  });
}
