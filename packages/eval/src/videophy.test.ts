import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseCsv, toCsv } from './csv.js';
import { videophyScoreCommand } from './videophy-command.js';
import { parseVideoPhyRatings, quantile, scoreVideoPhy, videoPhyCsv, videoPhyMarkdown, type VideoPhyRating } from './videophy.js';

const small = `model,caption,states_of_matter,sa,pc
A,"a ball, rolling",solid_solid,0.9,0.2
A,"the ""cup"" tips",solid_solid,0.5,0.5
A,water pours,solid_fluid,0.1,0.8
A,honey mixes,fluid_fluid,0.49,0.49
B,a wave hits a rock,solid_fluid,1,0.7
B,a boat sails,solid_fluid,0.6,0.3
`;

describe('csv', () => {
  it('parses quoted fields with commas, doubled quotes and newlines, and round-trips', () => {
    const rows = parseCsv('a,b\r\n"x, y","he said ""hi"""\n"multi\nline",2\n');
    expect(rows).toEqual([
      ['a', 'b'],
      ['x, y', 'he said "hi"'],
      ['multi\nline', '2'],
    ]);
    expect(parseCsv(toCsv(rows))).toEqual(rows);
  });
  it('round-trips arbitrary string tables', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.string(), { minLength: 2, maxLength: 2 }), { minLength: 1, maxLength: 5 }), (rows) => {
        expect(parseCsv(toCsv(rows))).toEqual(rows);
      }),
    );
  });
});

describe('VideoPhy scoring', () => {
  it('reproduces a hand-computed table', () => {
    const t = scoreVideoPhy(parseVideoPhyRatings(small), { bootstrap: 200 });
    const pick = (m: string, c: string) => {
      const v = t[m]![c]!;
      return [v.sa, v.pc, v.sa_pc, v.n];
    };
    expect(Object.keys(t)).toEqual(['A', 'B']);
    expect(Object.keys(t.A!)).toEqual(['solid_solid', 'solid_fluid', 'fluid_fluid', 'overall']);
    expect(pick('A', 'solid_solid')).toEqual([100, 50, 50, 2]);
    expect(pick('A', 'solid_fluid')).toEqual([0, 100, 0, 1]);
    expect(pick('A', 'fluid_fluid')).toEqual([0, 0, 0, 1]);
    expect(pick('A', 'overall')).toEqual([50, 50, 25, 4]);
    expect(Object.keys(t.B!)).toEqual(['solid_fluid', 'overall']);
    expect(pick('B', 'overall')).toEqual([100, 50, 50, 2]);
    // intervals contain the estimate; a cell with one outcome has a degenerate interval
    for (const cats of Object.values(t))
      for (const v of Object.values(cats)) {
        expect(v.sa_ci[0]).toBeLessThanOrEqual(v.sa);
        expect(v.sa_ci[1]).toBeGreaterThanOrEqual(v.sa);
        expect(v.pc_ci[0]).toBeLessThanOrEqual(v.pc);
        expect(v.sa_pc_ci[1]).toBeGreaterThanOrEqual(v.sa_pc);
      }
    expect(t.A!.solid_fluid!.pc_ci).toEqual([100, 100]);
    const md = videoPhyMarkdown(t);
    expect(md.split('\n')[0]).toBe(
      '| Model | Solid-Solid SA | Solid-Solid PC | Solid-Fluid SA | Solid-Fluid PC | Fluid-Fluid SA | Fluid-Fluid PC | Overall SA | Overall PC | Overall SA∧PC | n |',
    );
    expect(md).toContain('| A | 100.0 | 50.0 | 0.0 | 100.0 | 0.0 | 0.0 | 50.0 | 50.0 | 25.0 | 4 |');
    expect(md).toContain('| B | – | – | 100.0 | 50.0 | – | – | 100.0 | 50.0 | 50.0 | 2 |');
    expect(videoPhyCsv(t).split('\n')[1]).toMatch(/^A,solid_solid,2,100,/);
  });

  it('uses the VideoPhy2 threshold (≥ 4 of 1–5) and its own categories', () => {
    const csv = `model,caption,category,sa,pc\nM,x,sports,4,3\nM,y,sports,5,4\nM,z,cooking,3.9,5\n`;
    const t = scoreVideoPhy(parseVideoPhyRatings(csv, 'videophy2'), { scale: 'videophy2', bootstrap: 0 });
    expect(Object.keys(t.M!)).toEqual(['cooking', 'sports', 'overall']);
    expect(t.M!.sports).toMatchObject({ sa: 100, pc: 50, sa_pc: 50, n: 2 });
    expect(t.M!.cooking).toMatchObject({ sa: 0, pc: 100, sa_pc: 0, n: 1 });
    // without a category column, only overall
    const t2 = scoreVideoPhy(parseVideoPhyRatings('model,caption,sa,pc\nM,x,5,5\n', 'videophy2'), { scale: 'videophy2' });
    expect(Object.keys(t2.M!)).toEqual(['overall']);
  });

  const ratingArb = fc.record({
    model: fc.constantFrom('m1', 'm2', 'm3'),
    caption: fc.string(),
    category: fc.constantFrom('solid_solid', 'solid_fluid', 'fluid_fluid'),
    sa: fc.double({ min: 0, max: 1, noNaN: true }),
    pc: fc.double({ min: 0, max: 1, noNaN: true }),
  });

  it('property: permuting rows changes nothing (estimates and intervals)', () => {
    fc.assert(
      fc.property(
        fc
          .array(ratingArb, { minLength: 1, maxLength: 30 })
          .chain((rows) => fc.tuple(fc.constant(rows), fc.shuffledSubarray(rows, { minLength: rows.length, maxLength: rows.length }))),
        ([rows, perm]) => {
          const opts = { bootstrap: 50, seed: 3 };
          expect(scoreVideoPhy(perm, opts)).toEqual(scoreVideoPhy(rows, opts));
        },
      ),
      { numRuns: 50 },
    );
  });

  it('property: all-ones scores give 100 everywhere; percentages stay in [0, 100] with SA∧PC ≤ min(SA, PC)', () => {
    fc.assert(
      fc.property(fc.array(ratingArb, { minLength: 1, maxLength: 30 }), (rows) => {
        const ones: VideoPhyRating[] = rows.map((r) => ({ ...r, sa: 1, pc: 1 }));
        for (const cats of Object.values(scoreVideoPhy(ones, { bootstrap: 20 })))
          for (const v of Object.values(cats)) expect([v.sa, v.pc, v.sa_pc, ...v.sa_pc_ci]).toEqual([100, 100, 100, 100, 100]);
        for (const cats of Object.values(scoreVideoPhy(rows, { bootstrap: 20 })))
          for (const v of Object.values(cats)) {
            expect(v.sa_pc).toBeLessThanOrEqual(Math.min(v.sa, v.pc) + 1e-9);
            for (const x of [v.sa, v.pc, ...v.sa_ci, ...v.pc_ci]) expect(x >= 0 && x <= 100).toBe(true);
          }
      }),
      { numRuns: 50 },
    );
  });

  it('bootstrap interval of a proportion matches the normal approximation roughly', () => {
    // 200 videos, 60% SA: the 95% interval half-width ≈ 1.96·sqrt(.6·.4/200) = 6.8 points
    const rows: VideoPhyRating[] = Array.from({ length: 200 }, (_, i) => ({ model: 'm', caption: String(i), category: 'solid_solid', sa: i < 120 ? 1 : 0, pc: 0 }));
    const v = scoreVideoPhy(rows, { bootstrap: 2000, seed: 1 }).m!.overall!;
    expect(v.sa).toBe(60);
    expect((v.sa_ci[1] - v.sa_ci[0]) / 2).toBeGreaterThan(5.8);
    expect((v.sa_ci[1] - v.sa_ci[0]) / 2).toBeLessThan(7.8);
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
  });

  it('rejects bad input with a message naming the problem', () => {
    expect(() => parseVideoPhyRatings('model,caption,sa\nA,x,1\n')).toThrow(/missing columns 'pc', 'states_of_matter'/);
    expect(() => parseVideoPhyRatings('model,caption,states_of_matter,sa,pc\nA,x,solid_solid,1.3,0\n')).toThrow(
      /line 2: sa = 1.3 is outside \[0, 1\]/,
    );
    expect(() => parseVideoPhyRatings('model,caption,states_of_matter,sa,pc\nA,x,solid_solid,0.5,5\n', 'videophy2')).toThrow(
      /line 2: sa = 0.5 is outside \[1, 5\]/,
    );
    expect(() => parseVideoPhyRatings('model,caption,states_of_matter,sa,pc\nA,x,gas_gas,1,0\n')).toThrow(
      /states_of_matter 'gas_gas' is not one of solid_solid, solid_fluid, fluid_fluid/,
    );
    expect(() => parseVideoPhyRatings('model,caption,states_of_matter,sa,pc\nA,x,solid_solid,high,0\n')).toThrow(/'sa' must be a number, got 'high'/);
    expect(() => parseVideoPhyRatings('model,caption,states_of_matter,sa,pc\n')).toThrow(/at least one rated video/);
    expect(() => parseVideoPhyRatings('model,caption,states_of_matter,sa,pc\nA,x,solid_solid,1\n')).toThrow(/has 4 fields, expected 5/);
  });
});

describe('vrepa videophy score', () => {
  it('writes JSON, CSV, Markdown and a PNG chart; exits 1 with a clear message on bad input', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-'));
    const csv = path.join(dir, 'ratings.csv');
    fs.writeFileSync(csv, small);
    const out = { json: path.join(dir, 'o.json'), csv: path.join(dir, 'o.csv'), md: path.join(dir, 'o.md'), png: path.join(dir, 'o.png') };
    const writes: string[] = [];
    const orig = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => (writes.push(String(s)), true)) as typeof process.stdout.write;
    let rc: number;
    try {
      rc = await videophyScoreCommand.run([csv, '--json', out.json, '--csv', out.csv, '--md', out.md, '--png', out.png, '--bootstrap', '100']);
    } finally {
      process.stdout.write = orig;
    }
    expect(rc).toBe(0);
    expect(writes.join('')).toContain('| A | 100.0 |');
    const json = JSON.parse(fs.readFileSync(out.json, 'utf8'));
    expect(json.A.overall).toMatchObject({ sa: 50, pc: 50, sa_pc: 25, n: 4 });
    expect(json.A.overall.sa_ci).toHaveLength(2);
    expect(fs.readFileSync(out.md, 'utf8')).toContain('Overall SA∧PC');
    const png = fs.readFileSync(out.png);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.length).toBeGreaterThan(5000);

    const bad = path.join(dir, 'bad.csv');
    fs.writeFileSync(bad, 'model,caption,sa\nA,x,1\n');
    const errs: string[] = [];
    const origErr = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (errs.push(String(s)), true)) as typeof process.stderr.write;
    try {
      expect(await videophyScoreCommand.run([bad])).toBe(1);
      expect(await videophyScoreCommand.run([csv, '--scale', 'videophy3'])).toBe(2);
    } finally {
      process.stderr.write = origErr;
    }
    expect(errs.join('')).toMatch(/bad\.csv: missing columns 'pc', 'states_of_matter'/);
    expect(errs.join('')).toMatch(/--scale must be videophy or videophy2/);
  });
});
