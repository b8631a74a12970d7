import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { applyNativePatches, listNativePatches, nativePatchesHash } from './native.js';

const tmp: string[] = [];
afterEach(() => tmp.splice(0).forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function fixture() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-patch-test-'));
  tmp.push(root);
  const store = path.join(root, 'store.cc'); // stands for the pnpm store's copy
  fs.writeFileSync(store, 'int a = 1;\nint b = 2;\n');
  const pkg = path.join(root, 'pkg');
  fs.mkdirSync(path.join(pkg, 'binding'), { recursive: true });
  fs.linkSync(store, path.join(pkg, 'binding', 'x.cc'));
  const patches = path.join(root, 'patches');
  fs.mkdirSync(patches);
  return { root, store, pkg, patches };
}

const modify = (from: string, to: string) =>
  `description line\n--- a/binding/x.cc\n+++ b/binding/x.cc\n@@ -1,2 +1,2 @@\n-int a = ${from};\n+int a = ${to};\n int b = 2;\n`;
const create = '--- a/binding/new.cc\n+++ b/binding/new.cc\n@@ -0,0 +1 @@\n+int c = 3;\n';

describe('applyNativePatches', () => {
  it('patches into new inodes, never through the hardlink, and undoes a previous set', () => {
    const { store, pkg, patches } = fixture();
    fs.writeFileSync(path.join(patches, '10-a.patch'), modify('1', '10'));
    fs.writeFileSync(path.join(patches, '20-new.patch'), create);
    const set = listNativePatches(patches);
    expect(set.map((p) => p.name)).toEqual(['10-a.patch', '20-new.patch']);
    expect(set[0]!.files).toEqual(['binding/x.cc']);
    const r = applyNativePatches(pkg, set);
    expect(r.ok, r.message).toBe(true);
    const x = path.join(pkg, 'binding', 'x.cc');
    expect(fs.readFileSync(x, 'utf8')).toBe('int a = 10;\nint b = 2;\n');
    expect(fs.statSync(x).nlink).toBe(1);
    expect(fs.readFileSync(store, 'utf8')).toBe('int a = 1;\nint b = 2;\n'); // the shared copy is untouched
    expect(fs.readFileSync(path.join(pkg, 'binding', 'new.cc'), 'utf8')).toBe('int c = 3;\n');

    // A changed set starts again from the originals (this hunk only applies to the original 'a = 1').
    fs.rmSync(path.join(patches, '20-new.patch'));
    fs.writeFileSync(path.join(patches, '10-a.patch'), modify('1', '42'));
    const set2 = listNativePatches(patches);
    expect(nativePatchesHash(set2)).not.toBe(nativePatchesHash(set));
    expect(applyNativePatches(pkg, set2).ok).toBe(true);
    expect(fs.readFileSync(x, 'utf8')).toBe('int a = 42;\nint b = 2;\n');
    expect(fs.existsSync(path.join(pkg, 'binding', 'new.cc'))).toBe(false);

    // No patches: the original content is back.
    expect(applyNativePatches(pkg, []).ok).toBe(true);
    expect(fs.readFileSync(x, 'utf8')).toBe('int a = 1;\nint b = 2;\n');
  });

  it('reports a patch that does not apply, naming it', () => {
    const { pkg, patches } = fixture();
    fs.writeFileSync(path.join(patches, '30-bad.patch'), modify('7', '8'));
    const r = applyNativePatches(pkg, listNativePatches(patches));
    expect(r.ok).toBe(false);
    expect(r.message).toContain('30-bad.patch');
    expect(fs.readFileSync(path.join(pkg, 'binding', 'x.cc'), 'utf8')).toBe('int a = 1;\nint b = 2;\n');
  });

  it("ships the collective-ops patch that adds enableCollectiveOps", () => {
    const p = listNativePatches().find((q) => q.name.endsWith('collective-ops.patch'));
    expect(p?.files).toContain('binding/vrepa_collective.cc');
    expect(p?.text).toContain('TFE_EnableCollectiveOps');
  });
});
