import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyHunks, applyNativePatches, listNativePatches, parseUnifiedDiff, patchSetHash, type NativePatch } from './native-patches.js';

const ORIGINAL = ['line 1', 'line 2', 'line 3', 'line 4', 'line 5', 'line 6', 'line 7', 'line 8'].join('\n') + '\n';

const EDIT: NativePatch = {
  name: '01-edit.patch',
  text: ['--- a/src/x.cc', '+++ b/src/x.cc', '@@ -2,3 +2,4 @@', ' line 2', '-line 3', '+line three', '+inserted', ' line 4', '@@ -7,2 +8,2 @@', ' line 7', '-line 8', '+line eight', ''].join('\n'),
};
const CREATE: NativePatch = {
  name: '02-new.patch',
  text: ['--- /dev/null', '+++ b/src/new.cc', '@@ -0,0 +1,2 @@', '+// new', '+int f() { return 1; }', ''].join('\n'),
};

/** A package directory whose src/x.cc is a hard link to a "store" file, as pnpm lays it out. */
function fakePackage(): { pkg: string; store: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-patch-'));
  const store = path.join(root, 'store-x.cc');
  fs.writeFileSync(store, ORIGINAL);
  const pkg = path.join(root, 'pkg');
  fs.mkdirSync(path.join(pkg, 'src'), { recursive: true });
  fs.mkdirSync(path.join(pkg, 'deps'));
  fs.linkSync(store, path.join(pkg, 'src', 'x.cc'));
  return { pkg, store };
}

describe('parseUnifiedDiff / applyHunks', () => {
  it('applies hunks by context, with the line offsets of earlier hunks', () => {
    const [fp] = parseUnifiedDiff(EDIT.name, EDIT.text);
    expect(fp!.file).toBe('src/x.cc');
    const out = applyHunks(EDIT.name, fp!, ORIGINAL);
    expect(out).toBe(['line 1', 'line 2', 'line three', 'inserted', 'line 4', 'line 5', 'line 6', 'line 7', 'line eight', ''].join('\n'));
  });

  it('finds a hunk whose context moved a few lines', () => {
    const [fp] = parseUnifiedDiff(EDIT.name, EDIT.text);
    const shifted = 'extra a\nextra b\n' + ORIGINAL;
    expect(applyHunks(EDIT.name, fp!, shifted).split('\n').slice(0, 6)).toEqual(['extra a', 'extra b', 'line 1', 'line 2', 'line three', 'inserted']);
  });

  it('names the patch, file and hunk when the context does not match', () => {
    const [fp] = parseUnifiedDiff(EDIT.name, EDIT.text);
    expect(() => applyHunks(EDIT.name, fp!, ORIGINAL.replace('line 3', 'LINE 3'))).toThrow(/01-edit\.patch: hunk 1 of src\/x\.cc .*does not apply/);
  });

  it('rejects a hunk cut short', () => {
    const cut = EDIT.text.split('\n').slice(0, 6).join('\n');
    expect(() => parseUnifiedDiff('cut.patch', cut)).toThrow(/cut short/);
  });

  it('the set hash changes with any name or byte', () => {
    const h = patchSetHash([EDIT, CREATE]);
    expect(patchSetHash([EDIT, CREATE])).toBe(h);
    expect(patchSetHash([EDIT])).not.toBe(h);
    expect(patchSetHash([EDIT, { ...CREATE, text: CREATE.text.replace('1', '2') }])).not.toBe(h);
    expect(patchSetHash([EDIT, { ...CREATE, name: '03-new.patch' }])).not.toBe(h);
  });
});

describe('applyNativePatches', () => {
  it('writes patched files as new inodes and never changes the hard-linked store file', () => {
    const { pkg, store } = fakePackage();
    expect(fs.statSync(path.join(pkg, 'src', 'x.cc')).nlink).toBe(2);
    const written = applyNativePatches(pkg, [EDIT, CREATE]);
    expect(written.sort()).toEqual(['src/new.cc', 'src/x.cc']);
    expect(fs.readFileSync(store, 'utf8')).toBe(ORIGINAL);
    expect(fs.statSync(store).nlink).toBe(1);
    expect(fs.statSync(path.join(pkg, 'src', 'x.cc')).nlink).toBe(1);
    expect(fs.readFileSync(path.join(pkg, 'src', 'x.cc'), 'utf8')).toContain('line three\ninserted\n');
    expect(fs.readFileSync(path.join(pkg, 'src', 'new.cc'), 'utf8')).toBe('// new\nint f() { return 1; }\n');
  });

  it('re-applying the same set writes nothing; a changed set starts again from the pristine files', () => {
    const { pkg } = fakePackage();
    applyNativePatches(pkg, [EDIT, CREATE]);
    expect(applyNativePatches(pkg, [EDIT, CREATE])).toEqual([]);
    expect(applyNativePatches(pkg, [EDIT]).sort()).toEqual(['src/new.cc']); // the created file is removed
    expect(fs.existsSync(path.join(pkg, 'src', 'new.cc'))).toBe(false);
    expect(applyNativePatches(pkg, []).sort()).toEqual(['src/x.cc']);
    expect(fs.readFileSync(path.join(pkg, 'src', 'x.cc'), 'utf8')).toBe(ORIGINAL);
  });

  it('writes nothing when a later patch fails to apply', () => {
    const { pkg } = fakePackage();
    const bad: NativePatch = { name: '03-bad.patch', text: EDIT.text.replace(' line 2', ' line 2 (not there)') };
    expect(() => applyNativePatches(pkg, [CREATE, bad])).toThrow(/03-bad\.patch/);
    expect(fs.existsSync(path.join(pkg, 'src', 'new.cc'))).toBe(false);
    expect(fs.statSync(path.join(pkg, 'src', 'x.cc')).nlink).toBe(2);
  });

  it("core's own patches parse and apply to the installed tfjs-node sources", async () => {
    const patches = listNativePatches();
    expect(patches.length).toBeGreaterThan(0);
    const { findPackageDir } = await import('./native.js');
    const pkgDir = findPackageDir('@tensorflow/tfjs-node');
    expect(pkgDir).toBeDefined();
    // Apply to pristine copies in a temp dir (the worktree's own package may already be patched).
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-patch-real-'));
    const pristine = path.join(pkgDir!, 'deps', 'vrepa-pristine');
    // files a patch creates (and later patches modify, as 33 does 32's) come from the patches, not the package
    const created = new Set<string>();
    for (const p of patches) {
      for (const fp of parseUnifiedDiff(p.name, p.text)) {
        if (fp.creates) created.add(fp.file);
        if (fp.creates || created.has(fp.file)) continue;
        const src = fs.existsSync(path.join(pristine, fp.file)) ? path.join(pristine, fp.file) : path.join(pkgDir!, fp.file);
        fs.mkdirSync(path.dirname(path.join(tmp, fp.file)), { recursive: true });
        fs.copyFileSync(src, path.join(tmp, fp.file));
      }
    }
    fs.mkdirSync(path.join(tmp, 'deps'));
    expect(applyNativePatches(tmp, patches).length).toBeGreaterThan(0);
    // 33-binary-threads.patch modifies 32's new files: the whole set gives both
    expect(fs.readFileSync(path.join(tmp, 'binding/tfjs_binding.cc'), 'utf8')).toMatch(/"smallBinary"[\s\S]*"binaryInfo"[\s\S]*"mulAdd"/);
    expect(fs.readFileSync(path.join(tmp, 'binding/vrepa_fastexec.cc'), 'utf8')).toContain('class Pool2');
    // 30-fused-adamw.patch touches only context that the other patches leave alone: it applies alone too
    const adamw = patches.filter((p) => p.name.startsWith('30-'));
    expect(adamw.length).toBe(1);
    applyNativePatches(tmp, adamw);
    const bindingCc = fs.readFileSync(path.join(tmp, 'binding/tfjs_binding.cc'), 'utf8');
    expect(bindingCc).toContain('"fusedAdamW"');
    expect(bindingCc).not.toContain('enableCollectiveOps');
    expect(fs.readFileSync(path.join(tmp, 'binding.gyp'), 'utf8')).toMatch(/'binding\/vrepa_adamw\.cc',[\s\S]*'-ffp-contract=off'/);
    // so does 31-reshape-view.patch
    const view = patches.filter((p) => p.name.startsWith('31-'));
    expect(view.length).toBe(1);
    applyNativePatches(tmp, view);
    expect(fs.readFileSync(path.join(tmp, 'binding/tfjs_binding.cc'), 'utf8')).toContain('"reshapeTensor"');
    expect(fs.readFileSync(path.join(tmp, 'binding/tfjs_binding.cc'), 'utf8')).not.toContain('"fusedAdamW"');
  });
});
