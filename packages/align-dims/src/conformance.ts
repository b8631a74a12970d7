/**
 * Conformance handlers of the cases this package owns: `interpolation`, `teacher_preprocess`, `align_path`.
 * Every shape, mode, scale, grid, margin and weight comes from the manifest entry and the sub-case files.
 */
import * as tf from '@tensorflow/tfjs';
import { toTorchLayout, type ConformanceContext, type ConformanceHandler } from '@vrepa/core';
import { interpolate, type InterpolateOptions, type InterpolationMode } from './interpolate.js';
import { normalizeFrames, teacherInputReduced } from './teacher-input.js';
import { alignmentForward, alignmentLoss, type AlignLossKind } from './align.js';

let hiddenCounter = 0;
import { Projector } from './projector.js';
import { Downsampler } from './downsampler.js';

function tol(ctx: ConformanceContext, ...keys: string[]): string {
  const t = ctx.subcase.tolerances ?? {};
  for (const k of keys) if (typeof t[k] === 'string') return t[k];
  throw new Error(`${ctx.caseName}/${ctx.subcase.name}: no tolerance for ${keys.join(' / ')} in the manifest (has ${Object.keys(t).join(', ')})`);
}

function toChannelsLast(x: tf.Tensor): tf.Tensor {
  const r = x.rank;
  return tf.transpose(x, [0, ...Array.from({ length: r - 2 }, (_, i) => i + 2), 1]);
}
function toChannelsFirst(x: tf.Tensor): tf.Tensor {
  const r = x.rank;
  return tf.transpose(x, [0, r - 1, ...Array.from({ length: r - 2 }, (_, i) => i + 1)]);
}

function numbersIn(text: string): number[] {
  return (text.match(/-?[0-9]+(?:\.[0-9]*)?(?:e[-+]?[0-9]+)?/gi) ?? []).map(Number);
}

/** The interpolate options of one `interpolation` sub-case: from params, else from the recorded call. */
export function interpolationOptionsFromParams(params: Record<string, any>, callSites?: Record<string, any>): InterpolateOptions {
  const call: string = String(params.call ?? callSites?.[params.kind]?.call ?? '');
  const mode = (params.mode ?? call.match(/mode\s*=\s*['"]([\w-]+)['"]/)?.[1]) as InterpolationMode | undefined;
  if (!mode) throw new Error(`interpolation: sub-case ${params.name} names no mode (params.mode or mode='…' in its call)`);
  const ac = params.align_corners ?? call.match(/align_corners\s*=\s*(True|False)/)?.[1];
  const alignCorners = ac === true || ac === 'True';
  const spatial = (params.shape as number[]).length - 2;
  const scale = params.scale_factor ?? params.scale;
  if (Array.isArray(scale) || typeof scale === 'number') return { mode, alignCorners, scaleFactor: scale };
  if (Array.isArray(params.size) || typeof params.size === 'number') return { mode, alignCorners, size: params.size };
  const sm = call.match(/scale_factor\s*=\s*\(([^)]*)\)/) ?? call.match(/scale_factor\s*=\s*([0-9.eE+-]+)/);
  if (sm) {
    const v = numbersIn(sm[1]!);
    if (v.length === spatial || v.length === 1) return { mode, alignCorners, scaleFactor: v.length === 1 ? v[0]! : v };
  }
  const zm = call.match(/size\s*=\s*\(([^)]*)\)/);
  if (zm) {
    const v = numbersIn(zm[1]!);
    if (v.length === spatial) return { mode, alignCorners, size: v };
  }
  if (Array.isArray(params.output_shape)) return { mode, alignCorners, size: (params.output_shape as number[]).slice(2) };
  throw new Error(`interpolation: sub-case ${params.name} gives neither a size nor a scale factor`);
}

/** `interpolation`: forward and d sum(output·weight)/d input, channels-first as PyTorch stores them. */
export const interpolationHandler: ConformanceHandler = (ctx) => {
  const opts = interpolationOptionsFromParams({ name: ctx.subcase.name, ...ctx.params }, ctx.manifest?.official?.call_sites);
  tf.tidy(() => {
    const input = ctx.ref('input');
    const weight = ctx.ref('weight');
    const f = (x: tf.Tensor) => toChannelsFirst(interpolate(toChannelsLast(x), opts));
    const out = f(input);
    ctx.compare('output', out, tol(ctx, 'output'));
    if (ctx.file.has('grad_input')) {
      const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(f(x), weight)))(input);
      ctx.compare('grad_input', g, tol(ctx, 'grad_input'));
    }
  });
};

/** `teacher_preprocess`: (x+1)/2, ImageNet normalise, drop frame 0, bicubic to (H//3, W//3). */
export const teacherPreprocessHandler: ConformanceHandler = (ctx) => {
  tf.tidy(() => {
    const raw = ctx.ref('raw_frames'); // [B, C, F, H, W]
    const video = tf.transpose(raw, [0, 2, 3, 4, 1]); // [B, F, H, W, C]
    if (ctx.file.has('normalized')) {
      const n = normalizeFrames(video);
      ctx.compare('normalized', tf.transpose(n, [0, 4, 1, 2, 3]), tol(ctx, 'normalized'));
    }
    const want = ctx.file.info('teacher_input').shape; // [B, C, F-1, h, w]
    const [, , , H, W] = raw.shape as number[];
    const factor = ctx.params.downscale ?? ctx.params.factor ?? 3;
    const size: [number, number] = [Math.floor(H! / factor), Math.floor(W! / factor)];
    if (want[3] !== size[0] || want[4] !== size[1]) {
      throw new Error(`teacher_preprocess: reference teacher_input is ${want[3]}×${want[4]}, expected H//${factor}×W//${factor} = ${size[0]}×${size[1]}`);
    }
    const { clip } = teacherInputReduced(video, { size });
    ctx.compare('teacher_input', tf.transpose(clip, [0, 4, 1, 2, 3]), tol(ctx, 'teacher_input'));
  });
};

const LOSS_PREFIX: Partial<Record<AlignLossKind, string>> = {
  trd: 'trd',
  'trd-spatial': 'trd_only_spatial',
  'trd-temporal': 'trd_only_temporal',
  repa: 'repa',
};

/** `align_path`: hidden state → projector → drop frame 0 → trilinear ×2 → conv → TRD / REPA, with grads. */
export const alignPathHandler: ConformanceHandler = (ctx) => {
  const p = ctx.params;
  if (!ctx.weights) throw new Error('align_path: the sub-case names no weights file');
  const weights = ctx.weights;
  const hidden = ctx.ref('hidden_states') as tf.Tensor3D;
  const teacher = ctx.ref('teacher') as tf.Tensor3D;
  const [, , inner] = hidden.shape;
  const studentGrid = { frames: Number(p.latent_frames), height: Number(p.h), width: Number(p.w) };
  const teacherGrid = {
    frames: Number(p.teacher_frames ?? 2 * (studentGrid.frames - 1)),
    height: Number(p.teacher_h ?? Math.floor(studentGrid.height / 3)),
    width: Number(p.teacher_w ?? Math.floor(studentGrid.width / 3)),
  };
  const interp = p.interpolation ?? {};
  const ds = p.downsampler ?? {};
  const pair = (v: unknown, dflt: number): [number, number] => (Array.isArray(v) ? [Number(v[0]), Number(v[1])] : typeof v === 'number' ? [v, v] : [dflt, dflt]);
  // dims from params, else from the weights' shapes (PyTorch Linear [out, in])
  const hiddenDim = Number(p.projector_dim ?? weights.info('projectors.0.0.weight').shape[0]);
  const alignDim = Number(p.align_dim ?? weights.info('projectors.0.4.weight').shape[0]);
  const projector = Projector.fromStateDict(weights, { inDim: inner, hiddenDim, outDim: alignDim });
  let downsampler: Downsampler;
  try {
    downsampler = Downsampler.fromStateDict(weights, {
      channels: alignDim,
      kernel: pair(ds.kernel, 3),
      stride: pair(ds.stride, 3),
      padding: typeof ds.padding === 'number' ? ds.padding : 0,
    });
  } catch (e) {
    projector.dispose();
    throw e;
  }
  const scale = interp.scale_factor;
  const timeScaleFactor = Array.isArray(scale) ? Number(scale[0]) : typeof scale === 'number' ? scale : undefined;
  const interpMode = (interp.mode ?? 'trilinear') as InterpolationMode;
  try {
    for (const kind of Object.keys(LOSS_PREFIX) as AlignLossKind[]) {
      const prefix = LOSS_PREFIX[kind]!;
      if (!ctx.file.has(`${prefix}_loss`)) continue;
      const margin = kind === 'trd' ? Number(p.margin ?? 0.1) : Number(p.margin_matrix ?? p.margin ?? 0.1);
      const opts = {
        projector,
        downsampler,
        studentGrid,
        teacherGrid,
        loss: kind,
        margin,
        timeScaleFactor,
        interpolationMode: interpMode as 'trilinear',
        alignCorners: !!interp.align_corners,
      };
      tf.tidy(() => {
        const h = tf.variable(hidden, true, `align_path_hidden_${kind}_${++hiddenCounter}`);
        try {
          const params = [...projector.namedParameters(), ...downsampler.namedParameters()];
          const vars = [h, ...params.map(([, q]) => q.value)];
          const { value, grads } = tf.variableGrads(() => alignmentLoss(h, teacher, opts), vars);
          ctx.compare(`${prefix}_loss`, value, tol(ctx, 'loss'));
          ctx.compare(`${prefix}_grad_hidden_states`, grads[h.name]!, tol(ctx, 'grad_hidden_states'));
          for (const [name, q] of params) {
            const ref = `${prefix}_grad.${name}`;
            // gradients come in the stored layout; the reference is in PyTorch's
            if (ctx.file.has(ref)) ctx.compare(ref, toTorchLayout(grads[q.value.name]!, q.layout), tol(ctx, 'param_grads'));
          }
          if (kind === 'trd') {
            const it = alignmentForward(hidden, teacher, opts);
            if (ctx.file.has('projected')) ctx.compare('projected', it.projected, tol(ctx, 'intermediates'));
            // official layout of `interpolated`: [B, C, F, H, W]; of `downsampled`: [B, F, h, w, C]
            if (ctx.file.has('interpolated')) ctx.compare('interpolated', tf.transpose(it.interpolated, [0, 4, 1, 2, 3]), tol(ctx, 'intermediates'));
            if (ctx.file.has('downsampled')) ctx.compare('downsampled', it.studentGridTensor, tol(ctx, 'intermediates'));
          }
        } finally {
          h.dispose();
        }
      });
    }
  } finally {
    projector.dispose();
    downsampler.dispose();
  }
};

/** Case name → handler, for `registerConformanceHandler` / `pnpm conformance`. */
export const conformanceHandlers: Record<string, ConformanceHandler> = {
  interpolation: interpolationHandler,
  teacher_preprocess: teacherPreprocessHandler,
  align_path: alignPathHandler,
};
