/** Charts (Node only: resvg is a native addon): a vega-lite spec → SVG (vega, headless) → PNG (resvg), all offline. */
// vega, vega-lite and resvg load on first use (they are heavy), so importing @vrepa/core stays cheap.

/** Render a vega-lite spec to SVG text. */
export async function vegaLiteToSvg(spec: Record<string, unknown>): Promise<string> {
  const vega = await import('vega');
  const vl = await import('vega-lite');
  const compiled = vl.compile(spec as unknown as import('vega-lite').TopLevelSpec).spec;
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
  const { Resvg } = await import('@resvg/resvg-js');
  const png = new Resvg(svg, {
    background: 'white',
    fitTo: { mode: 'zoom', value: opts.scale ?? 2 },
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  })
    .render()
    .asPng();
  return Buffer.from(png);
}
