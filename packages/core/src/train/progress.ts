/**
 * A progress line for training loops (step, loss and its parts, lr, it/s, ETA) and a plain counter for
 * other long work. Browser-safe: it writes to any `{ write, isTTY }` stream (process.stderr by default).
 */

export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

const fmt = (x: number | null) => (x === null ? 'nan' : Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toFixed(4) : x.toExponential(3));

/** Where progress goes: a TTY is redrawn in place, anything else gets whole lines. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** One training step for the progress line: the loss, its named parts (shown in brackets) and the lr. */
export interface ProgressEntry {
  step: number;
  loss: number | null;
  parts?: Record<string, number | null>;
  lr: number;
}

/** One line per update on a TTY (redrawn), every ~10% of the run otherwise. */
export class ProgressBar {
  private readonly t0 = performance.now();
  private readonly tty: boolean;
  private lastPrinted = -1;

  constructor(
    private readonly total: number,
    private readonly start: number,
    private readonly enabled = true,
    private readonly stream: ProgressStream = (globalThis as { process?: { stderr: ProgressStream } }).process?.stderr ?? { write: (s: string) => console.error(s.trimEnd()) },
  ) {
    this.tty = !!stream.isTTY;
  }

  line(e: ProgressEntry, now = performance.now()): string {
    const done = e.step - this.start;
    const secs = (now - this.t0) / 1000;
    const rate = done / Math.max(secs, 1e-9);
    const eta = (this.total - e.step) / Math.max(rate, 1e-9);
    const width = 20;
    const filled = Math.round((width * e.step) / Math.max(1, this.total));
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    const parts = Object.entries(e.parts ?? {});
    const detail = parts.length ? ` (${parts.map(([k, v]) => `${k} ${fmt(v)}`).join(', ')})` : '';
    return `step ${e.step}/${this.total} [${bar}] loss ${fmt(e.loss)}${detail} lr ${e.lr.toExponential(2)} ${rate.toFixed(2)} it/s ETA ${formatDuration(eta)}`;
  }

  /** A plain counter (`label i/total … it/s ETA`) for work other than training steps. */
  count(i: number, label: string, now = performance.now()): void {
    if (!this.enabled) return;
    const secs = (now - this.t0) / 1000;
    const rate = (i - this.start) / Math.max(secs, 1e-9);
    const eta = (this.total - i) / Math.max(rate, 1e-9);
    this.emit(i, `${label} ${i}/${this.total} ${rate.toFixed(2)} it/s ETA ${formatDuration(eta)}`);
  }

  update(e: ProgressEntry): void {
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

