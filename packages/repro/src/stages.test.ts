import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StageRunner, canonical, configHash } from './stages.js';

const tmp: string[] = [];
const dir = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'repro-stages-'));
  tmp.push(d);
  return d;
};
afterEach(() => tmp.splice(0).forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe('configHash', () => {
  it('ignores key order and undefined values, and sees every value', () => {
    expect(canonical({ b: 1, a: [1, { d: 2, c: undefined }] })).toBe('{"a":[1,{"d":2}],"b":1}');
    expect(configHash({ a: 1, b: 2 })).toBe(configHash({ b: 2, a: 1 }));
    expect(configHash({ a: 1, b: 2 })).not.toBe(configHash({ a: 1, b: 3 }));
  });
});

describe('StageRunner', () => {
  it('builds once, then reuses the finished stage (done marker) without calling build', async () => {
    const out = dir();
    let calls = 0;
    const build = (d: string) => {
      calls++;
      fs.writeFileSync(path.join(d, 'x.txt'), 'hello');
    };
    const a = await new StageRunner({ out, log: () => {} }).run('data', { n: 1 }, build);
    expect(a.cached).toBe(false);
    expect(fs.readFileSync(path.join(a.dir, 'x.txt'), 'utf8')).toBe('hello');
    expect(fs.existsSync(path.join(a.dir, 'done.json'))).toBe(true);
    const b = await new StageRunner({ out, log: () => {} }).run('data', { n: 1 }, build);
    expect(b.cached).toBe(true);
    expect(b.dir).toBe(a.dir);
    expect(calls).toBe(1);
  });

  it('a changed config is a new stage; the old one stays', async () => {
    const out = dir();
    const r = new StageRunner({ out, log: () => {} });
    const a = await r.run('arm-trd-s1', { lambda: 0.5 }, () => {});
    const b = await r.run('arm-trd-s1', { lambda: 0.25 }, () => {});
    expect(a.dir).not.toBe(b.dir);
    expect(fs.existsSync(path.join(a.dir, 'done.json')) && fs.existsSync(path.join(b.dir, 'done.json'))).toBe(true);
  });

  it('a failing build leaves no stage folder, and the next run builds it again', async () => {
    const out = dir();
    const r = new StageRunner({ out, log: () => {} });
    await expect(
      r.run('teacher', { k: 1 }, (d) => {
        fs.writeFileSync(path.join(d, 'half.bin'), 'x');
        throw new Error('killed');
      }),
    ).rejects.toThrow('killed');
    expect(fs.readdirSync(path.join(out, 'stages'))).toEqual([]);
    const ok = await r.run('teacher', { k: 1 }, () => {});
    expect(ok.cached).toBe(false);
  });

  it('a folder without its done marker (crash after a partial copy) is rebuilt', async () => {
    const out = dir();
    const r = new StageRunner({ out, log: () => {} });
    const d = r.dirOf('eval-x', { a: 1 });
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, 'stale.txt'), 'stale');
    const rec = await r.run('eval-x', { a: 1 }, (t) => fs.writeFileSync(path.join(t, 'fresh.txt'), 'ok'));
    expect(rec.cached).toBe(false);
    expect(fs.existsSync(path.join(rec.dir, 'stale.txt'))).toBe(false);
    expect(fs.existsSync(path.join(rec.dir, 'fresh.txt'))).toBe(true);
  });

  it('rejects stage names that are not plain file names', () => {
    expect(() => new StageRunner({ out: dir(), log: () => {} }).dirOf('../x', {})).toThrow(/stage name/);
  });
});
