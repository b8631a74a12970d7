/** Progress bar (step, loss parts, it/s, ETA) and the loss-curve plot (vega-lite → SVG → PNG). */
import fs from 'node:fs';
import { vegaLiteToPng } from '@vrepa/eval';

export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

const fmt = (x: number | null) => (x === null ? 'nan' : Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toFixed(4) : x.toExponential(3));

/** One line per update on a TTY (redrawn), every ~10% of the run otherwise. */
export class ProgressBar {
  private readonly t0 = performance.now();
  private readonly tty: boolean;
  private lastPrinted = -1;

  constructor(
    private readonly total: number,
    private readonly start: number,
    private readonly enabled = true,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = !!stream.isTTY;
  }

  line(e: { step: number; loss: number | null; loss_diff: number | null; loss_align: number | null; lr: number }, now = performance.now()): string {
    const done = e.step - this.start;
    const secs = (now - this.t0) / 1000;
    const rate = done / Math.max(secs, 1e-9);
    const eta = (this.total - e.step) / Math.max(rate, 1e-9);
    const width = 20;
    const filled = Math.round((width * e.step) / Math.max(1, this.total));
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    return `step ${e.step}/${this.total} [${bar}] loss ${fmt(e.loss)} (diff ${fmt(e.loss_diff)}, align ${fmt(e.loss_align)}) lr ${e.lr.toExponential(2)} ${rate.toFixed(2)} it/s ETA ${formatDuration(eta)}`;
  }

  /** A plain counter (`label i/total … it/s ETA`) for work other than training steps. */
  count(i: number, label: string, now = performance.now()): void {
    if (!this.enabled) return;
    const secs = (now - this.t0) / 1000;
    const rate = (i - this.start) / Math.max(secs, 1e-9);
    const eta = (this.total - i) / Math.max(rate, 1e-9);
    this.emit(i, `${label} ${i}/${this.total} ${rate.toFixed(2)} it/s ETA ${formatDuration(eta)}`);
  }

  update(e: { step: number; loss: number | null; loss_diff: number | null; loss_align: number | null; lr: number }): void {
    if (!this.enabled) return;
    this.emit(e.step, this.line(e));
  }

  private emit(step: number, text: string): void {
    if (this.tty) {
      this.stream.write(`\r\x1b[2K${text}`);
      return;
    }
    const every = Math.max(1, Math.floor(this.total / 10));
    if (step === this.total || step - this.lastPrinted >= every || this.lastPrinted < 0) {
      this.stream.write(`${text}\n`);
      this.lastPrinted = step;
    }
  }

  done(): void {
    if (this.enabled && this.tty) this.stream.write('\n');
  }
}

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

/** The vega-lite spec of the loss curves (total, diffusion, alignment per step). */
export function lossCurveSpec(rows: ReturnType<typeof readLog>): Record<string, unknown> {
  const values: { step: number; series: string; value: number }[] = [];
  for (const r of rows) {
    for (const [key, series] of [['loss', 'total'], ['loss_diff', 'diffusion'], ['loss_align', 'alignment (TRD)']] as const) {
      const v = r[key];
      if (typeof v === 'number' && Number.isFinite(v)) values.push({ step: r.step, series, value: v });
    }
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'training loss',
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
export async function writeLossPlot(logFile: string, pngFile: string): Promise<string> {
  const png = await vegaLiteToPng(lossCurveSpec(readLog(logFile)));
  const tmp = `${pngFile}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, png);
  fs.renameSync(tmp, pngFile);
  return pngFile;
}
