/**
 * The noise schedule of the CogVideoX schedulers, in float64 exactly as the official (bundled diffusers)
 * code builds it: scaled-linear betas, cumulative product, the SD3-style SNR shift, and the zero-terminal-SNR
 * rescale. This is the single source of ᾱ for sampling and for the training loss.
 */

export interface CogVideoXSchedulerConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
  trained_betas?: number[] | null;
  clip_sample: boolean;
  clip_sample_range: number;
  set_alpha_to_one: boolean;
  steps_offset: number;
  prediction_type: 'epsilon' | 'sample' | 'v_prediction';
  timestep_spacing: 'linspace' | 'leading' | 'trailing';
  rescale_betas_zero_snr: boolean;
  snr_shift_scale: number;
}

/** Constructor defaults of the official classes (diffusers CogVideoX DDIM/DPM schedulers). */
export const SCHEDULER_DEFAULTS: CogVideoXSchedulerConfig = {
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  trained_betas: null,
  clip_sample: true,
  clip_sample_range: 1.0,
  set_alpha_to_one: true,
  steps_offset: 0,
  prediction_type: 'epsilon',
  timestep_spacing: 'leading',
  rescale_betas_zero_snr: false,
  snr_shift_scale: 3.0,
};

/** The `scheduler_config.json` of CogVideoX-2B (snr_shift_scale 3) and -5B (1). */
export const COGVIDEOX_2B_SCHEDULER: Partial<CogVideoXSchedulerConfig> = {
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  clip_sample: false,
  num_train_timesteps: 1000,
  prediction_type: 'v_prediction',
  rescale_betas_zero_snr: true,
  set_alpha_to_one: true,
  timestep_spacing: 'trailing',
  snr_shift_scale: 3.0,
};
export const COGVIDEOX_5B_SCHEDULER: Partial<CogVideoXSchedulerConfig> = { ...COGVIDEOX_2B_SCHEDULER, snr_shift_scale: 1.0 };

const IGNORED_KEYS = new Set(['_class_name', '_diffusers_version', 'thresholding', 'dynamic_thresholding_ratio', 'sample_max_value']);

/**
 * Validate a config (e.g. a parsed scheduler_config.json) against the official fields and fill defaults.
 * Unknown keys and unsupported values are errors naming the key.
 */
export function resolveSchedulerConfig(raw: Record<string, unknown>, what = 'scheduler config'): CogVideoXSchedulerConfig {
  const out: Record<string, unknown> = { ...SCHEDULER_DEFAULTS };
  for (const [k, v] of Object.entries(raw)) {
    if (IGNORED_KEYS.has(k)) {
      if ((k === 'thresholding' && v === true)) throw new Error(`${what}: thresholding=true is not supported`);
      continue;
    }
    if (!(k in SCHEDULER_DEFAULTS)) throw new Error(`${what}: unknown key '${k}' (known: ${Object.keys(SCHEDULER_DEFAULTS).join(', ')})`);
    out[k] = v;
  }
  const c = out as unknown as CogVideoXSchedulerConfig;
  const oneOf = (key: keyof CogVideoXSchedulerConfig, allowed: readonly unknown[]) => {
    if (!allowed.includes(c[key])) throw new Error(`${what}: ${key}=${JSON.stringify(c[key])} is not supported (expected one of ${allowed.join(', ')})`);
  };
  oneOf('beta_schedule', ['linear', 'scaled_linear', 'squaredcos_cap_v2']);
  oneOf('prediction_type', ['epsilon', 'sample', 'v_prediction']);
  oneOf('timestep_spacing', ['linspace', 'leading', 'trailing']);
  const positiveInt = (key: keyof CogVideoXSchedulerConfig) => {
    if (!Number.isInteger(c[key]) || (c[key] as number) < 1) throw new Error(`${what}: ${key} must be a positive integer, got ${JSON.stringify(c[key])}`);
  };
  positiveInt('num_train_timesteps');
  for (const key of ['beta_start', 'beta_end', 'snr_shift_scale', 'clip_sample_range'] as const) {
    if (typeof c[key] !== 'number' || !Number.isFinite(c[key])) throw new Error(`${what}: ${key} must be a finite number, got ${JSON.stringify(c[key])}`);
  }
  if (c.snr_shift_scale <= 0) throw new Error(`${what}: snr_shift_scale must be > 0, got ${c.snr_shift_scale}`);
  if (!Number.isInteger(c.steps_offset) || c.steps_offset < 0) throw new Error(`${what}: steps_offset must be a non-negative integer`);
  if (c.trained_betas != null && (!Array.isArray(c.trained_betas) || c.trained_betas.length !== c.num_train_timesteps)) {
    throw new Error(`${what}: trained_betas must be a list of num_train_timesteps (${c.num_train_timesteps}) numbers`);
  }
  return c;
}

/** torch.linspace in float64, with ATen's symmetric fill (start + i·step below halfway, end − (n−1−i)·step above). */
export function torchLinspace(start: number, end: number, steps: number): Float64Array {
  const out = new Float64Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const step = (end - start) / (steps - 1);
  const halfway = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) out[i] = i < halfway ? start + step * i : end - step * (steps - i - 1);
  return out;
}

function betasForAlphaBar(n: number, maxBeta = 0.999): Float64Array {
  const f = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  const out = new Float64Array(n);
  // The official function returns float32 betas.
  for (let i = 0; i < n; i++) out[i] = Math.fround(Math.min(1 - f((i + 1) / n) / f(i / n), maxBeta));
  return out;
}

/** ᾱ_t for t = 0..T−1 in float64 (the official scheduler's `alphas_cumprod`). */
export function computeAlphasCumprod(config: CogVideoXSchedulerConfig): Float64Array {
  const n = config.num_train_timesteps;
  let betas: Float64Array;
  if (config.trained_betas != null) betas = Float64Array.from(config.trained_betas, (b) => Math.fround(b));
  else if (config.beta_schedule === 'linear') {
    // float32 linspace in the official code
    betas = Float64Array.from(torchLinspace(config.beta_start, config.beta_end, n), (b) => Math.fround(b));
  } else if (config.beta_schedule === 'scaled_linear') {
    betas = torchLinspace(config.beta_start ** 0.5, config.beta_end ** 0.5, n).map((b) => b ** 2);
  } else betas = betasForAlphaBar(n);
  const ac = new Float64Array(n);
  let prod = 1;
  for (let i = 0; i < n; i++) {
    prod *= 1 - betas[i]!;
    ac[i] = prod;
  }
  const s = config.snr_shift_scale;
  for (let i = 0; i < n; i++) ac[i] = ac[i]! / (s + (1 - s) * ac[i]!);
  if (config.rescale_betas_zero_snr) rescaleZeroTerminalSnr(ac);
  return ac;
}

/** In place: shift √ᾱ so the last is 0, scale so the first keeps its value (Lin et al. 2023, Alg. 1). */
function rescaleZeroTerminalSnr(ac: Float64Array): void {
  const sq = ac.map(Math.sqrt);
  const s0 = sq[0]!;
  const sT = sq[sq.length - 1]!;
  const scale = s0 / (s0 - sT);
  for (let i = 0; i < sq.length; i++) {
    const v = (sq[i]! - sT) * scale;
    ac[i] = v * v;
  }
}

/** numpy's round-half-to-even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The inference timesteps of `set_timesteps(n)` (descending integers). */
export function inferenceTimesteps(config: CogVideoXSchedulerConfig, numInferenceSteps: number): number[] {
  const T = config.num_train_timesteps;
  if (!Number.isInteger(numInferenceSteps) || numInferenceSteps < 1) {
    throw new Error(`setTimesteps: num_inference_steps must be an integer ≥ 1, got ${numInferenceSteps}`);
  }
  if (numInferenceSteps > T) {
    throw new Error(`setTimesteps: num_inference_steps ${numInferenceSteps} cannot be larger than num_train_timesteps ${T}`);
  }
  const n = numInferenceSteps;
  const out: number[] = [];
  if (config.timestep_spacing === 'linspace') {
    const ls = torchLinspace(0, T - 1, n);
    for (let i = n - 1; i >= 0; i--) out.push(roundHalfEven(ls[i]!));
  } else if (config.timestep_spacing === 'leading') {
    const ratio = Math.floor(T / n);
    for (let i = n - 1; i >= 0; i--) out.push(i * ratio + config.steps_offset);
  } else {
    const ratio = T / n;
    // np.arange(T, 0, -ratio): ceil(T / ratio) values T − i·ratio
    const count = Math.ceil((0 - T) / -ratio);
    for (let i = 0; i < count; i++) out.push(roundHalfEven(T + i * -ratio) - 1);
  }
  return out;
}
