/**
 * Training logs on disk (Node only): log.jsonl rows and the loss-curve PNG made from them
 * (vega-lite → SVG → PNG, see chart.node.ts).
 */
import fs from 'node:fs';
import { vegaLiteToPng } from './chart.node.js';

/** Read log.jsonl rows (lines cut by a crash are ignored). */
export function readLog(file: string): Array<Record<string, unknown> & { step: number }> {
  if (!fs.existsSync(file)) return [];
  const out: Array<Record<string, unknown> & { step: number }> = [];
  for (const l of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!l.trim()) continue;
    try {
      out.push(JSON.parse(l));
    } catch {
      // partial line
    }
  }
  return out;
}

/** Which log columns a loss plot draws: `[column, legend label]`. */
export type LossSeries = ReadonlyArray<readonly [string, string]>;

/** The default series: every numeric column named `loss` or `loss_*` in the rows, labelled by its name. */
export function defaultLossSeries(rows: ReturnType<typeof readLog>): LossSeries {
  const keys = new Set<string>();
  for (const r of rows) for (const [k, v] of Object.entries(r)) if ((k === 'loss' || k.startsWith('loss_')) && typeof v === 'number') keys.add(k);
  return [...keys].map((k) => [k, k] as const);
}

/** The vega-lite spec of the loss curves (one line per series, over step). */
export function lossCurveSpec(rows: ReturnType<typeof readLog>, series: LossSeries = defaultLossSeries(rows), title = 'training loss'): Record<string, unknown> {
  const values: { step: number; series: string; value: number }[] = [];
  for (const r of rows) {
    for (const [key, label] of series) {
      const v = r[key];
      if (typeof v === 'number' && Number.isFinite(v)) values.push({ step: r.step, series: label, value: v });
    }
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 560,
    height: 280,
    data: { values },
    mark: { type: 'line', point: values.length <= 60 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step' },
      y: { field: 'value', type: 'quantitative', title: 'loss' },
      color: { field: 'series', type: 'nominal', title: null },
    },
  };
}

/** Write the loss-curve PNG from a log.jsonl; returns the PNG path. */
export async function writeLossPlot(logFile: string, pngFile: string, series?: LossSeries, title?: string): Promise<string> {
  const rows = readLog(logFile);
  const png = await vegaLiteToPng(lossCurveSpec(rows, series ?? defaultLossSeries(rows), title));
  const tmp = `${pngFile}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, png);
  fs.renameSync(tmp, pngFile);
  return pngFile;
}
