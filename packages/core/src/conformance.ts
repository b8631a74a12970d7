/**
 * The conformance runner: every `<case>/manifest.json` under a directory, each sub-case through the
 * handler its package registered, every reference tensor compared with the manifest's tolerance.
 * Handlers take all shapes, seeds and configs from the manifest; nothing here knows a case's shape.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { fixturesDir } from './fixtures.js';
import { SafetensorsFile } from './safetensors.js';

/** A parsed tolerance: how much |got − want| each element may have, plus an optional relative-L2 bound. */
export interface Tolerance {
  /** Allowed absolute error of element i given the whole reference `want`. */
  allowed: (wantAbs: number, maxAbsWant: number) => number;
  /** Optional bound on ‖got − want‖₂ / ‖want‖₂. */
  relL2?: number;
  text: string;
}

const NUM = String.raw`([0-9.]+(?:e[-+]?[0-9]+)?)`;

/**
 * Parse a manifest tolerance sentence. Understood forms (first match wins):
 * "exact"; "compare elementwise to A * max|want| and relative L2 to B"; "elementwise … A * max|want| + B";
 * "absolute A * max(F, max|want|)"; "relative A of max|want|"; "relative A (absolute B when … ~0)";
 * "relative A"; "absolute A". Throws on anything else so a new form is never compared loosely.
 */
export function parseTolerance(text: string): Tolerance {
  const t = text.trim();
  let m: RegExpMatchArray | null;
  if (/^exact\b/i.test(t)) return { allowed: () => 0, text };
  if ((m = t.match(new RegExp(String.raw`elementwise to ${NUM}\s*\*\s*max\|want\|\s*and relative L2 to ${NUM}`, 'i')))) {
    const a = Number(m[1]);
    return { allowed: (_w, mx) => a * mx, relL2: Number(m[2]), text };
  }
  if ((m = t.match(new RegExp(String.raw`^elementwise[^0-9]*?${NUM}\s*\*\s*max\|want\|\s*\+\s*${NUM}`, 'i')))) {
    const a = Number(m[1]);
    const b = Number(m[2]);
    return { allowed: (_w, mx) => a * mx + b, text };
  }
  if ((m = t.match(new RegExp(String.raw`^elementwise\s+${NUM}\s*\*\s*max\|want\|`, 'i')))) {
    const a = Number(m[1]);
    return { allowed: (_w, mx) => a * mx, text };
  }
  if ((m = t.match(new RegExp(String.raw`^absolute\s+${NUM}\s*\*\s*max\(${NUM},\s*max\|want\|\)`, 'i')))) {
    const a = Number(m[1]);
    const floor = Number(m[2]);
    return { allowed: (_w, mx) => a * Math.max(floor, mx), text };
  }
  if ((m = t.match(new RegExp(String.raw`^relative\s+${NUM}\s+of\s+max\|want\|`, 'i')))) {
    const a = Number(m[1]);
    return { allowed: (_w, mx) => a * mx, text };
  }
  if ((m = t.match(new RegExp(String.raw`^relative\s+${NUM}\s*\(absolute\s+${NUM}`, 'i')))) {
    const a = Number(m[1]);
    const b = Number(m[2]);
    return { allowed: (w) => Math.max(a * w, b), text };
  }
  if ((m = t.match(new RegExp(String.raw`^relative\s+${NUM}`, 'i')))) {
    const a = Number(m[1]);
    return { allowed: (w) => a * w, text };
  }
  if ((m = t.match(new RegExp(String.raw`^absolute\s+${NUM}`, 'i')))) {
    const a = Number(m[1]);
    return { allowed: () => a, text };
  }
  throw new Error(`parseTolerance: cannot understand tolerance "${text}"`);
}

export interface TensorComparison {
  tensor: string;
  maxError: number;
  /** worst over elements of error ÷ allowed (and relL2 ÷ bound); ≤ 1 passes. */
  ratio: number;
  pass: boolean;
  detail?: string;
}

type Numeric = tf.Tensor | ArrayLike<number> | number;

function toArray(x: Numeric): { data: ArrayLike<number>; shape?: number[] } {
  if (typeof x === 'number') return { data: [x], shape: [] };
  if (x instanceof tf.Tensor) return { data: x.dataSync() as ArrayLike<number>, shape: x.shape };
  return { data: x };
}

/** Compare `got` against `want` under `tol`; shapes must agree when both are known. */
export function compareTensors(name: string, got: Numeric, want: Numeric, tol: Tolerance | string): TensorComparison {
  const tolerance = typeof tol === 'string' ? parseTolerance(tol) : tol;
  const g = toArray(got);
  const w = toArray(want);
  if (g.shape && w.shape && g.shape.join(',') !== w.shape.join(',')) {
    return { tensor: name, maxError: Infinity, ratio: Infinity, pass: false, detail: `shape [${g.shape}] vs reference [${w.shape}]` };
  }
  if (g.data.length !== w.data.length) {
    return { tensor: name, maxError: Infinity, ratio: Infinity, pass: false, detail: `${g.data.length} values vs reference ${w.data.length}` };
  }
  let maxAbsWant = 0;
  for (let i = 0; i < w.data.length; i++) maxAbsWant = Math.max(maxAbsWant, Math.abs(Number(w.data[i])));
  let maxError = 0;
  let ratio = 0;
  let diff2 = 0;
  let want2 = 0;
  for (let i = 0; i < w.data.length; i++) {
    const wv = Number(w.data[i]);
    const gv = Number(g.data[i]);
    const err = Math.abs(gv - wv);
    if (Number.isNaN(gv) !== Number.isNaN(wv) || !Number.isFinite(err) && gv !== wv) {
      return { tensor: name, maxError: Infinity, ratio: Infinity, pass: false, detail: `non-finite value at ${i}: got ${gv}, want ${wv}` };
    }
    if (Number.isNaN(err)) continue;
    maxError = Math.max(maxError, err);
    const allowed = tolerance.allowed(Math.abs(wv), maxAbsWant);
    ratio = Math.max(ratio, allowed === 0 ? (err === 0 ? 0 : Infinity) : err / allowed);
    diff2 += err * err;
    want2 += wv * wv;
  }
  if (tolerance.relL2 !== undefined) {
    const rel = want2 === 0 ? Math.sqrt(diff2) : Math.sqrt(diff2 / want2);
    ratio = Math.max(ratio, rel / tolerance.relL2);
  }
  return { tensor: name, maxError, ratio, pass: ratio <= 1 };
}

/** What a handler gets for one sub-case. */
export interface ConformanceContext {
  caseName: string;
  caseDir: string;
  /** The whole manifest.json. */
  manifest: any;
  /** This sub-case's manifest entry (params, tensors, values, tolerances, …). */
  subcase: any;
  params: Record<string, any>;
  /** The sub-case's tensor file. */
  file: SafetensorsFile;
  /** The sub-case's `*.weights.safetensors`, when the manifest names one. */
  weights?: SafetensorsFile;
  /** Reference tensor by name as a tf tensor (tracked and disposed by the runner). */
  ref(name: string): tf.Tensor;
  /** Record a comparison of `got` with reference tensor `refName` (or an explicit `want`). */
  compare(refName: string, got: Numeric, tolerance: Tolerance | string, want?: Numeric): TensorComparison;
  /** The comparisons recorded so far. */
  results: TensorComparison[];
}

export type ConformanceHandler = (ctx: ConformanceContext) => void | Promise<void>;

const handlers = new Map<string, ConformanceHandler>();

/** Register the handler of one case name (each package registers its own). */
export function registerConformanceHandler(caseName: string, handler: ConformanceHandler): void {
  handlers.set(caseName, handler);
}

export function conformanceHandlers(): ReadonlyMap<string, ConformanceHandler> {
  return handlers;
}

export interface SubcaseResult {
  case: string;
  subcase: string;
  pass: boolean;
  handled: boolean;
  tensors: number;
  worst_ratio: number | null;
  worst_tensor?: string;
  error?: string;
  comparisons: TensorComparison[];
  ms: number;
}

/** Find every `<case>/manifest.json` directly under `dir` (or `dir` itself when it holds one). */
export function findCases(dir: string): Array<{ caseName: string; caseDir: string; manifest: any }> {
  const out: Array<{ caseName: string; caseDir: string; manifest: any }> = [];
  const read = (caseDir: string) => {
    const mf = path.join(caseDir, 'manifest.json');
    let manifest: any;
    try {
      manifest = JSON.parse(fs.readFileSync(mf, 'utf8'));
    } catch (e) {
      throw new Error(`conformance: ${mf} is not valid JSON (${(e as Error).message})`);
    }
    if (!Array.isArray(manifest.subcases)) throw new Error(`conformance: ${mf} has no subcases list`);
    out.push({ caseName: String(manifest.case ?? path.basename(caseDir)), caseDir, manifest });
  };
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`conformance: ${dir} is not a directory`);
  if (fs.existsSync(path.join(dir, 'manifest.json'))) read(dir);
  else {
    for (const name of fs.readdirSync(dir).sort()) {
      const sub = path.join(dir, name);
      if (fs.statSync(sub).isDirectory() && fs.existsSync(path.join(sub, 'manifest.json'))) read(sub);
    }
  }
  return out;
}

/** Run one sub-case through a handler. Disposes every tensor it creates. */
export async function runSubcase(
  caseName: string,
  caseDir: string,
  manifest: any,
  subcase: any,
  handler: ConformanceHandler,
): Promise<SubcaseResult> {
  const t0 = performance.now();
  const results: TensorComparison[] = [];
  const name = String(subcase.name);
  let file: SafetensorsFile | undefined;
  let weights: SafetensorsFile | undefined;
  let error: string | undefined;
  tf.engine().startScope();
  try {
    const fileName = subcase.file ?? `${name}.safetensors`;
    file = SafetensorsFile.open(path.join(caseDir, fileName));
    const wf = subcase.weights_file ?? subcase.weights?.file;
    if (typeof wf === 'string') weights = SafetensorsFile.open(path.join(caseDir, path.basename(wf)));
    const f = file;
    const ctx: ConformanceContext = {
      caseName,
      caseDir,
      manifest,
      subcase,
      params: subcase.params ?? {},
      file: f,
      weights,
      ref: (n) => f.tensor(n),
      compare: (refName, got, tol, want) => {
        const c = compareTensors(refName, got, want ?? f.tensor(refName), tol);
        results.push(c);
        return c;
      },
      results,
    };
    await handler(ctx);
    if (results.length === 0) error = 'handler compared no tensors';
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  } finally {
    tf.engine().endScope();
    file?.close();
    weights?.close();
  }
  const worst = results.reduce<TensorComparison | undefined>((a, b) => (!a || b.ratio > a.ratio ? b : a), undefined);
  return {
    case: caseName,
    subcase: name,
    handled: true,
    pass: !error && results.every((r) => r.pass),
    tensors: results.length,
    worst_ratio: worst ? worst.ratio : null,
    worst_tensor: worst?.tensor,
    error,
    comparisons: results,
    ms: performance.now() - t0,
  };
}

export interface ConformanceOptions {
  /** Only these case names (a named case without a handler fails the run). */
  cases?: string[];
  /** Cases without a handler fail the run. */
  strict?: boolean;
  onResult?: (r: SubcaseResult) => void;
}

export interface ConformanceReport {
  results: SubcaseResult[];
  unhandledCases: string[];
  ok: boolean;
}

export async function runConformance(dir: string, opts: ConformanceOptions = {}): Promise<ConformanceReport> {
  const found = findCases(dir);
  const results: SubcaseResult[] = [];
  const unhandledCases: string[] = [];
  const wanted = opts.cases ? new Set(opts.cases) : undefined;
  if (wanted) {
    for (const c of wanted) {
      if (!found.some((f) => f.caseName === c)) {
        const r: SubcaseResult = { case: c, subcase: '-', pass: false, handled: false, tensors: 0, worst_ratio: null, error: `no case '${c}' under ${dir}`, comparisons: [], ms: 0 };
        results.push(r);
        opts.onResult?.(r);
      }
    }
  }
  for (const { caseName, caseDir, manifest } of found) {
    if (wanted && !wanted.has(caseName)) continue;
    const handler = handlers.get(caseName);
    if (!handler) unhandledCases.push(caseName);
    for (const sc of manifest.subcases) {
      let r: SubcaseResult;
      if (!handler) {
        r = { case: caseName, subcase: String(sc.name), pass: false, handled: false, tensors: 0, worst_ratio: null, error: 'no handler registered', comparisons: [], ms: 0 };
      } else {
        r = await runSubcase(caseName, caseDir, manifest, sc, handler);
      }
      results.push(r);
      opts.onResult?.(r);
    }
  }
  const ok = results.every((r) => r.pass || (!r.handled && !opts.strict && !(wanted && wanted.has(r.case))));
  return { results, unhandledCases, ok };
}

/** What a package's conformance test looks at: every sub-case result, the failing ones as lines, and a summary table. */
export interface HandlersOnFixtures {
  results: SubcaseResult[];
  /** One line per sub-case that did not pass: `case/subcase: error; tensor ratio r (detail); …` (empty when all pass). */
  failures: string[];
  /** One line per sub-case: pass/FAIL, tensors compared, worst error ratio and tensor (for assertion messages). */
  table: string;
}

/**
 * Register `handlers` (case name → handler) and run the named `cases` (default: every case the handlers cover)
 * of the fixture set in `dir` (default: fixturesDir()). A named case missing from `dir` comes back as a failure.
 * For package tests: `expect(failures, table).toEqual([])`.
 */
export async function runHandlersOnFixtures(
  handlers: Record<string, ConformanceHandler>,
  cases: string[] = Object.keys(handlers),
  dir: string | undefined = fixturesDir(),
): Promise<HandlersOnFixtures> {
  if (!dir) throw new Error('runHandlersOnFixtures: no fixture set found (set VREPA_FIXTURES or run inside the repository next to shared/fixtures)');
  for (const [name, h] of Object.entries(handlers)) registerConformanceHandler(name, h);
  const { results } = await runConformance(dir, { cases });
  const failures = results
    .filter((r) => !r.pass)
    .map((r) => {
      const bad = r.comparisons.filter((c) => !c.pass).map((c) => `${c.tensor} ratio ${c.ratio}${c.detail ? ` (${c.detail})` : ''}`);
      return `${r.case}/${r.subcase}: ${[r.error, ...bad].filter(Boolean).join('; ')}`;
    });
  const table = results
    .map((r) => `${r.case}/${r.subcase}: ${r.pass ? 'ok' : 'FAIL'}, ${r.tensors} tensors, worst ${r.worst_ratio?.toExponential(2) ?? '-'} (${r.worst_tensor ?? '-'})${r.error ? ` ${r.error}` : ''}`)
    .join('\n');
  return { results, failures, table };
}
