/**
 * Patches to the tfjs-node binding's C++ sources, applied by `vrepa backend install-native` before it builds.
 *
 * Contract: `packages/core/native-patches/NN-name.patch` are unified diffs relative to the tfjs-node
 * package root (`a/binding/x.cc` → `b/binding/x.cc`, `/dev/null` or `@@ -0,0` for a new file), applied in
 * lexical order. The binding is rebuilt when the set of patches changes: the hash of the patches
 * (`patchSetHash`) is recorded next to the binding (deps/vrepa-native.json).
 *
 * Files in a pnpm `node_modules/.pnpm` tree are hard links into the store shared by every project on the
 * machine, so a patched file is always written as a new inode (temp file + rename) and never in place; the
 * untouched original is kept in `deps/vrepa-pristine/` so that a changed patch set starts from it again.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativePatch {
  /** File name, e.g. `01-eager-perf.patch`. */
  name: string;
  text: string;
}

interface Hunk {
  oldStart: number;
  /** [' ' | '-' | '+', line text] */
  lines: Array<[string, string]>;
}

interface FilePatch {
  /** Path relative to the package root. */
  file: string;
  creates: boolean;
  hunks: Hunk[];
}

/** The directory holding core's native patches (shipped in the package next to dist/). */
export function nativePatchesDir(): string {
  let dir: string;
  try {
    dir = path.dirname(fileURLToPath(import.meta.url));
  } catch {
    dir = process.cwd();
  }
  for (let i = 0; i < 5; i++) {
    if (fs.existsSync(path.join(dir, 'native-patches')) && fs.existsSync(path.join(dir, 'package.json'))) return path.join(dir, 'native-patches');
    dir = path.dirname(dir);
  }
  throw new Error('@vrepa/core: its native-patches/ directory is missing (a broken install?)');
}

/** The patches in `dir`, in lexical order. */
export function listNativePatches(dir = nativePatchesDir()): NativePatch[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.patch'))
    .sort()
    .map((name) => ({ name, text: fs.readFileSync(path.join(dir, name), 'utf8') }));
}

/** A hash of the patch set (names and contents): the binding is rebuilt when it changes. */
export function patchSetHash(patches: NativePatch[]): string {
  const h = createHash('sha256');
  for (const p of patches) h.update(`${p.name}\0${p.text}\0`);
  return h.digest('hex').slice(0, 16);
}

const stripPrefix = (p: string) => p.replace(/^[ab]\//, '');

/** Parse a unified diff into per-file hunks. Throws naming the patch and line on malformed input. */
export function parseUnifiedDiff(name: string, text: string): FilePatch[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const files: FilePatch[] = [];
  let cur: FilePatch | undefined;
  let hunk: Hunk | undefined;
  let oldLeft = 0;
  let newLeft = 0;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (hunk && (oldLeft > 0 || newLeft > 0)) {
      const op = l[0] ?? ' ';
      if (op === '\\') continue; // "\ No newline at end of file"
      if (op !== ' ' && op !== '-' && op !== '+') throw new Error(`${name}:${i + 1}: unexpected line inside a hunk: ${JSON.stringify(l.slice(0, 40))}`);
      hunk.lines.push([op, l.slice(1)]);
      if (op !== '+') oldLeft--;
      if (op !== '-') newLeft--;
      if (oldLeft < 0 || newLeft < 0) throw new Error(`${name}:${i + 1}: hunk is longer than its header says`);
      continue;
    }
    if (l.startsWith('--- ')) {
      const next = lines[i + 1] ?? '';
      if (!next.startsWith('+++ ')) throw new Error(`${name}:${i + 1}: '---' line without a '+++' line after it`);
      const from = l.slice(4).split('\t')[0]!.trim();
      const to = next.slice(4).split('\t')[0]!.trim();
      if (to === '/dev/null') throw new Error(`${name}:${i + 2}: deleting files is not supported`);
      cur = { file: stripPrefix(to), creates: from === '/dev/null', hunks: [] };
      files.push(cur);
      hunk = undefined;
      i++;
      continue;
    }
    const m = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(l);
    if (m) {
      if (!cur) throw new Error(`${name}:${i + 1}: hunk before any '---'/'+++' file header`);
      hunk = { oldStart: Number(m[1]), lines: [] };
      oldLeft = m[2] === undefined ? 1 : Number(m[2]);
      newLeft = m[4] === undefined ? 1 : Number(m[4]);
      if (hunk.oldStart === 0 && oldLeft === 0) cur.creates = true;
      cur.hunks.push(hunk);
      continue;
    }
    // anything else between files (diff/index headers, blank lines) is ignored
  }
  if (hunk && (oldLeft > 0 || newLeft > 0)) throw new Error(`${name}: the last hunk is cut short`);
  return files;
}

/** Apply one file's hunks to its text; a hunk's context must match exactly (searched near its line number). */
export function applyHunks(patchName: string, fp: FilePatch, original: string | undefined): string {
  if (fp.creates) {
    if (original !== undefined) throw new Error(`${patchName}: creates ${fp.file}, which already exists (is another patch creating it too?)`);
    return fp.hunks.flatMap((h) => h.lines.filter(([op]) => op === '+').map(([, t]) => t)).join('\n') + '\n';
  }
  if (original === undefined) throw new Error(`${patchName}: patches ${fp.file}, which does not exist in the tfjs-node package`);
  const src = original.split('\n');
  let offset = 0; // lines added so far minus lines removed
  for (const [k, h] of fp.hunks.entries()) {
    const old = h.lines.filter(([op]) => op !== '+').map(([, t]) => t);
    const repl = h.lines.filter(([op]) => op !== '-').map(([, t]) => t);
    const want = h.oldStart - 1 + offset;
    const matchesAt = (at: number) => at >= 0 && at + old.length <= src.length && old.every((t, j) => src[at + j] === t);
    let at = -1;
    for (let d = 0; d <= 200 && at < 0; d++) {
      if (matchesAt(want - d)) at = want - d;
      else if (matchesAt(want + d)) at = want + d;
    }
    if (at < 0) throw new Error(`${patchName}: hunk ${k + 1} of ${fp.file} (at line ${h.oldStart}) does not apply: its context is not in the file (another patch or a different tfjs-node version?)`);
    src.splice(at, old.length, ...repl);
    offset += repl.length - old.length;
  }
  return src.join('\n');
}

/** Write `content` to `file` as a NEW inode (temp file + rename), never through an existing hard link. */
export function writeNewInode(file: string, content: string | Buffer): void {
  const tmp = `${file}.vrepa-${process.pid}.tmp`;
  fs.writeFileSync(tmp, content);
  fs.renameSync(tmp, file);
  const links = fs.statSync(file).nlink;
  if (links !== 1) throw new Error(`${file} has ${links} hard links after writing it as a new file; refusing to go on`);
}

interface PristineManifest {
  /** Files ever touched by a patch: whether they existed in the package before. */
  files: Record<string, boolean>;
}

/**
 * Bring the package's sources to "pristine + `patches`": restore every file an earlier patch set touched
 * (from deps/vrepa-pristine/, or delete it if a patch created it), then apply `patches` in order.
 * Returns the files written. Throws (before writing anything) when a patch does not apply.
 */
export function applyNativePatches(pkgDir: string, patches: NativePatch[]): string[] {
  const pristine = path.join(pkgDir, 'deps', 'vrepa-pristine');
  const manifestPath = path.join(pristine, 'manifest.json');
  const manifest: PristineManifest = fs.existsSync(manifestPath) ? JSON.parse(fs.readFileSync(manifestPath, 'utf8')) : { files: {} };
  const read = (rel: string): string | undefined => {
    if (rel in manifest.files) return manifest.files[rel] ? fs.readFileSync(path.join(pristine, rel), 'utf8') : undefined;
    const p = path.join(pkgDir, rel);
    return fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : undefined;
  };
  // 1. Compute every patched file in memory, from the pristine versions.
  const next = new Map<string, string>();
  for (const p of patches) {
    for (const fp of parseUnifiedDiff(p.name, p.text)) {
      if (path.isAbsolute(fp.file) || fp.file.split('/').includes('..')) throw new Error(`${p.name}: path ${fp.file} leaves the package`);
      const before = next.has(fp.file) ? next.get(fp.file) : read(fp.file);
      next.set(fp.file, applyHunks(p.name, fp, before));
    }
  }
  // 2. Keep originals of newly touched files (a copy is a new inode; the store's file stays as it was).
  for (const rel of next.keys()) {
    if (rel in manifest.files) continue;
    const p = path.join(pkgDir, rel);
    const existed = fs.existsSync(p);
    if (existed) {
      fs.mkdirSync(path.dirname(path.join(pristine, rel)), { recursive: true });
      fs.copyFileSync(p, path.join(pristine, rel));
    }
    manifest.files[rel] = existed;
  }
  fs.mkdirSync(pristine, { recursive: true });
  writeNewInode(manifestPath, JSON.stringify(manifest, null, 2));
  // 3. Restore what the new set no longer touches, write what it does.
  const written: string[] = [];
  for (const [rel, existed] of Object.entries(manifest.files)) {
    const p = path.join(pkgDir, rel);
    const want = next.has(rel) ? next.get(rel) : existed ? fs.readFileSync(path.join(pristine, rel), 'utf8') : undefined;
    const have = fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : undefined;
    if (want === have) continue;
    if (want === undefined) fs.rmSync(p, { force: true });
    else {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      writeNewInode(p, want);
    }
    written.push(rel);
  }
  return written;
}
