/**
 * VideoPhy / VideoPhy2 score tables: binarise per-video rater (or auto-evaluator) scores for semantic adherence
 * (SA) and physical commonsense (PC), report per model the percentage of videos with SA, PC and SA∧PC per
 * category and overall, with bootstrap percentile intervals.
 *
 * - VideoPhy: scores in [0, 1], a video counts when the score is ≥ 0.5; categories are the states of matter
 *   `solid_solid`, `solid_fluid`, `fluid_fluid` (column `states_of_matter`, required).
 * - VideoPhy2: scores on the 1–5 scale, a video counts when rated ≥ 4; categories are whatever the `category`
 *   (or else `states_of_matter`) column holds, if either is present; otherwise only `overall` is reported.
 */
import { parseCsvRecords, toCsv } from './csv.js';
import { Rng } from './rng.js';

export type VideoPhyScale = 'videophy' | 'videophy2';

export const VIDEOPHY_CATEGORIES = ['solid_solid', 'solid_fluid', 'fluid_fluid'] as const;

export const VIDEOPHY_SCALES: Record<VideoPhyScale, { min: number; max: number; threshold: number }> = {
  videophy: { min: 0, max: 1, threshold: 0.5 },
  videophy2: { min: 1, max: 5, threshold: 4 },
};

export class VideoPhyInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VideoPhyInputError';
  }
}

/** One rated video. */
export interface VideoPhyRating {
  model: string;
  caption: string;
  /** Category (state of matter for VideoPhy), or undefined when the file has no category column. */
  category?: string;
  sa: number;
  pc: number;
}

/** Percentages in [0, 100]; intervals are bootstrap percentile intervals at the requested level. */
export interface VideoPhyCell {
  sa: number;
  pc: number;
  sa_pc: number;
  n: number;
  sa_ci: [number, number];
  pc_ci: [number, number];
  sa_pc_ci: [number, number];
}

/** model → category (and `overall`) → cell. */
export type VideoPhyTable = Record<string, Record<string, VideoPhyCell>>;

export interface VideoPhyScoreOptions {
  scale?: VideoPhyScale;
  /** Bootstrap resamples (default 1000; 0 disables the intervals, which then equal the point estimate). */
  bootstrap?: number;
  /** Interval level (default 0.95). */
  level?: number;
  seed?: number;
}

/**
 * Read a ratings CSV (columns `model`, `caption`, `sa`, `pc`, and the category column: `states_of_matter` for
 * VideoPhy; `category` or `states_of_matter`, optional, for VideoPhy2). Throws naming the file, row and column
 * on missing columns, non-numeric or out-of-range scores and unknown categories.
 */
export function parseVideoPhyRatings(text: string, scale: VideoPhyScale = 'videophy', what = 'ratings CSV'): VideoPhyRating[] {
  const { columns, records } = parseCsvRecords(text, what);
  const required = ['model', 'caption', 'sa', 'pc'];
  let catCol: string | undefined;
  if (scale === 'videophy') required.push('states_of_matter');
  else catCol = columns.includes('category') ? 'category' : columns.includes('states_of_matter') ? 'states_of_matter' : undefined;
  if (scale === 'videophy') catCol = 'states_of_matter';
  const missing = required.filter((c) => !columns.includes(c));
  if (missing.length > 0)
    throw new VideoPhyInputError(
      `${what}: missing column${missing.length > 1 ? 's' : ''} ${missing.map((c) => `'${c}'`).join(', ')} (found: ${columns.join(', ') || 'none'}).`,
    );
  if (records.length === 0) throw new VideoPhyInputError(`${what}: expected at least one rated video, got only the header.`);
  const { min, max } = VIDEOPHY_SCALES[scale];
  return records.map((r, k) => {
    const row = k + 2; // 1-based line number, header is line 1
    const score = (col: 'sa' | 'pc') => {
      const raw = r[col]!.trim();
      const v = Number(raw);
      if (raw === '' || !Number.isFinite(v))
        throw new VideoPhyInputError(`${what} line ${row}: column '${col}' must be a number, got '${r[col]}'.`);
      if (v < min || v > max)
        throw new VideoPhyInputError(`${what} line ${row}: ${col} = ${v} is outside [${min}, ${max}], the range of --scale ${scale}.`);
      return v;
    };
    const model = r.model!.trim();
    if (model === '') throw new VideoPhyInputError(`${what} line ${row}: column 'model' is empty.`);
    let category: string | undefined;
    if (catCol) {
      category = r[catCol]!.trim();
      if (scale === 'videophy' && !(VIDEOPHY_CATEGORIES as readonly string[]).includes(category))
        throw new VideoPhyInputError(
          `${what} line ${row}: states_of_matter '${category}' is not one of ${VIDEOPHY_CATEGORIES.join(', ')}.`,
        );
      if (category === '') throw new VideoPhyInputError(`${what} line ${row}: column '${catCol}' is empty.`);
      if (category === 'overall') throw new VideoPhyInputError(`${what} line ${row}: 'overall' is reserved and cannot be a category.`);
    }
    return { model, caption: r.caption!, category, sa: score('sa'), pc: score('pc') };
  });
}

/** Counts of the four (SA, PC) outcomes: index = 2·sa + pc. */
type Counts = [number, number, number, number];

/**
 * Score rated videos into the per-model, per-category table. The bootstrap resamples videos with replacement
 * within each (model, category) cell (and within the model for `overall`); since SA and PC are binary, a
 * resample is a multinomial draw over the four (SA, PC) outcomes, so the result depends only on the counts
 * (row order changes nothing).
 */
export function scoreVideoPhy(ratings: readonly VideoPhyRating[], opts: VideoPhyScoreOptions = {}): VideoPhyTable {
  const scale = opts.scale ?? 'videophy';
  const B = opts.bootstrap ?? 1000;
  const level = opts.level ?? 0.95;
  if (!(level > 0 && level < 1)) throw new VideoPhyInputError(`scoreVideoPhy: level must be in (0, 1), got ${level}.`);
  if (!(Number.isInteger(B) && B >= 0)) throw new VideoPhyInputError(`scoreVideoPhy: bootstrap must be a non-negative integer, got ${B}.`);
  const { threshold } = VIDEOPHY_SCALES[scale];
  const counts = new Map<string, Map<string, Counts>>();
  for (const r of ratings) {
    const m = counts.get(r.model) ?? new Map<string, Counts>();
    counts.set(r.model, m);
    const o = 2 * (r.sa >= threshold ? 1 : 0) + (r.pc >= threshold ? 1 : 0);
    for (const cat of r.category === undefined ? ['overall'] : [r.category, 'overall']) {
      const c = m.get(cat) ?? [0, 0, 0, 0];
      c[o]++;
      m.set(cat, c);
    }
  }
  const table: VideoPhyTable = {};
  for (const model of [...counts.keys()].sort()) {
    const m = counts.get(model)!;
    const cats = [...m.keys()].filter((c) => c !== 'overall');
    const ordered = [...orderCategories(cats), 'overall'];
    table[model] = {};
    for (const cat of ordered) {
      // Seed per cell from (seed, model, category) so a cell's interval does not depend on the other cells.
      const rng = new Rng(hashString(`${opts.seed ?? 0}|${model}|${cat}`));
      table[model]![cat] = cellFromCounts(m.get(cat)!, B, level, rng);
    }
  }
  return table;
}

function cellFromCounts(c: Counts, B: number, level: number, rng: Rng): VideoPhyCell {
  const n = c[0] + c[1] + c[2] + c[3];
  const pct = (k: number) => (100 * k) / n;
  const est = { sa: pct(c[2] + c[3]), pc: pct(c[1] + c[3]), sa_pc: pct(c[3]) };
  const cell: VideoPhyCell = {
    ...est,
    n,
    sa_ci: [est.sa, est.sa],
    pc_ci: [est.pc, est.pc],
    sa_pc_ci: [est.sa_pc, est.sa_pc],
  };
  if (B === 0) return cell;
  const cum = [c[0] / n, (c[0] + c[1]) / n, (c[0] + c[1] + c[2]) / n];
  const sa = new Float64Array(B);
  const pc = new Float64Array(B);
  const both = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    const k: Counts = [0, 0, 0, 0];
    for (let i = 0; i < n; i++) {
      const u = rng.next();
      k[u < cum[0]! ? 0 : u < cum[1]! ? 1 : u < cum[2]! ? 2 : 3]++;
    }
    sa[b] = pct(k[2] + k[3]);
    pc[b] = pct(k[1] + k[3]);
    both[b] = pct(k[3]);
  }
  const a = (1 - level) / 2;
  cell.sa_ci = [quantile(sa, a), quantile(sa, 1 - a)];
  cell.pc_ci = [quantile(pc, a), quantile(pc, 1 - a)];
  cell.sa_pc_ci = [quantile(both, a), quantile(both, 1 - a)];
  return cell;
}

/** Linear-interpolation quantile (numpy's default) of the values; sorts a copy. */
export function quantile(values: ArrayLike<number>, q: number): number {
  const s = Float64Array.from(values).sort();
  if (s.length === 0) return NaN;
  const pos = q * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

function hashString(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

function orderCategories(cats: string[]): string[] {
  const known = VIDEOPHY_CATEGORIES.filter((c) => cats.includes(c));
  return [...known, ...cats.filter((c) => !(VIDEOPHY_CATEGORIES as readonly string[]).includes(c)).sort()];
}

/** Human label of a category key: `solid_fluid` → `Solid-Fluid`. */
export function categoryLabel(cat: string): string {
  return cat
    .split(/[_\s]+/)
    .map((w) => (w ? w[0]!.toUpperCase() + w.slice(1) : w))
    .join('-');
}

const fmt1 = (v: number) => v.toFixed(1);

/**
 * Markdown table in the layout of the paper's Table 1: one row per model, SA and PC per category, then the
 * overall SA, PC and SA∧PC and the number of videos.
 */
export function videoPhyMarkdown(table: VideoPhyTable, opts: { withCi?: boolean } = {}): string {
  const models = Object.keys(table);
  const cats = orderCategories([...new Set(models.flatMap((m) => Object.keys(table[m]!)))].filter((c) => c !== 'overall'));
  const header = ['Model', ...cats.flatMap((c) => [`${categoryLabel(c)} SA`, `${categoryLabel(c)} PC`]), 'Overall SA', 'Overall PC', 'Overall SA∧PC', 'n'];
  const cellText = (cell: VideoPhyCell | undefined, k: 'sa' | 'pc' | 'sa_pc') => {
    if (!cell) return '–';
    const ci = cell[`${k}_ci` as const];
    return opts.withCi ? `${fmt1(cell[k])} [${fmt1(ci[0])}, ${fmt1(ci[1])}]` : fmt1(cell[k]);
  };
  const lines = [
    `| ${header.join(' | ')} |`,
    `| ${header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...models.map((m) => {
      const t = table[m]!;
      const o = t.overall!;
      return `| ${[m, ...cats.flatMap((c) => [cellText(t[c], 'sa'), cellText(t[c], 'pc')]), cellText(o, 'sa'), cellText(o, 'pc'), cellText(o, 'sa_pc'), String(o.n)].join(' | ')} |`;
    }),
  ];
  return lines.join('\n') + '\n';
}

/** Long-format CSV: one row per (model, category) with estimates and interval bounds. */
export function videoPhyCsv(table: VideoPhyTable): string {
  const rows: unknown[][] = [['model', 'category', 'n', 'sa', 'sa_lo', 'sa_hi', 'pc', 'pc_lo', 'pc_hi', 'sa_pc', 'sa_pc_lo', 'sa_pc_hi']];
  for (const [m, cats] of Object.entries(table))
    for (const [c, v] of Object.entries(cats))
      rows.push([m, c, v.n, v.sa, v.sa_ci[0], v.sa_ci[1], v.pc, v.pc_ci[0], v.pc_ci[1], v.sa_pc, v.sa_pc_ci[0], v.sa_pc_ci[1]]);
  return toCsv(rows);
}

/** A vega-lite spec of the grouped bar chart: one panel per metric, categories on x, one bar per model, CI rules. */
export function videoPhyChartSpec(table: VideoPhyTable, title = 'VideoPhy'): Record<string, unknown> {
  const values: Record<string, unknown>[] = [];
  const metrics: [string, 'sa' | 'pc' | 'sa_pc'][] = [
    ['SA', 'sa'],
    ['PC', 'pc'],
    ['SA∧PC', 'sa_pc'],
  ];
  const catOrder: string[] = [];
  for (const [m, cats] of Object.entries(table))
    for (const [c, v] of Object.entries(cats)) {
      const label = c === 'overall' ? 'Overall' : categoryLabel(c);
      if (!catOrder.includes(label)) catOrder.push(label);
      for (const [name, k] of metrics) values.push({ model: m, category: label, metric: name, value: v[k], lo: v[`${k}_ci`][0], hi: v[`${k}_ci`][1] });
    }
  catOrder.sort((a, b) => (a === 'Overall' ? 1 : b === 'Overall' ? -1 : 0));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    data: { values },
    facet: { column: { field: 'metric', type: 'nominal', sort: metrics.map((x) => x[0]), title: null } },
    spec: {
      width: 60 * catOrder.length + 40,
      height: 220,
      encoding: {
        x: { field: 'category', type: 'nominal', sort: catOrder, title: null, axis: { labelAngle: -30 } },
        xOffset: { field: 'model', type: 'nominal' },
        color: { field: 'model', type: 'nominal', title: 'model' },
      },
      layer: [
        { mark: 'bar', encoding: { y: { field: 'value', type: 'quantitative', title: '% of videos', scale: { domain: [0, 100] } } } },
        { mark: { type: 'rule' }, encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' }, color: { value: 'black' } } },
      ],
    },
  };
}
