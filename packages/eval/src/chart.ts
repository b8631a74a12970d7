/** Charts: a vega-lite spec → SVG (vega, headless) → PNG (resvg), all offline. */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import * as vl from 'vega-lite';

/** Render a vega-lite spec to SVG text. */
export async function vegaLiteToSvg(spec: Record<string, unknown>): Promise<string> {
  const compiled = vl.compile(spec as unknown as vl.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Render a vega-lite spec to a PNG (white background, 2× zoom, DejaVu Sans text). */
export async function vegaLiteToPng(spec: Record<string, unknown>, opts: { scale?: number } = {}): Promise<Buffer> {
  const svg = await vegaLiteToSvg(spec);
  const png = new Resvg(svg, {
    background: 'white',
    fitTo: { mode: 'zoom', value: opts.scale ?? 2 },
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  })
    .render()
    .asPng();
  return Buffer.from(png);
}
