/** Conformance handler of the `schedulers` case: everything (class, config, steps, timesteps) from the manifest. */
import * as tf from '@tensorflow/tfjs';
import type { ConformanceContext } from '@vrepa/core';
import { CogVideoXDDIMScheduler, CogVideoXDPMScheduler, type NoiseSource } from './schedulers.js';

function pickTolerance(tols: Record<string, string>, key: string, fallback?: string): string {
  for (const [k, v] of Object.entries(tols)) if (k.split('/').map((s) => s.trim()).includes(key) || k === key) return v;
  if (fallback) for (const [k, v] of Object.entries(tols)) if (k.includes(fallback)) return v;
  throw new Error(`schedulers: no tolerance for '${key}' in the manifest`);
}

export async function schedulersHandler(ctx: ConformanceContext): Promise<void> {
  const p = ctx.params;
  const tols = ctx.subcase.tolerances as Record<string, string>;
  const make = () => {
    if (p.scheduler === 'CogVideoXDDIMScheduler') return new CogVideoXDDIMScheduler(p.config);
    if (p.scheduler === 'CogVideoXDPMScheduler') return new CogVideoXDPMScheduler(p.config);
    throw new Error(`schedulers: unknown scheduler class ${p.scheduler}`);
  };
  const sched = make();
  const f = ctx.file;
  const raw = (name: string) => f.read(name).data as unknown as ArrayLike<number>;
  const tensorTol = pickTolerance(tols, 'add_noise', 'step');

  // ᾱ: the float64 tolerance for the F64 copy, the float32 one for the F32 copy.
  const acTol = pickTolerance(tols, 'alphas_cumprod');
  const m = acTol.match(/relative\s+([0-9.e-]+)\s*\(float64\)\s*\/\s*([0-9.e-]+)\s*\(float32\)/);
  const tol64 = m ? `relative ${m[1]}` : acTol;
  const tol32 = m ? `relative ${m[2]}` : acTol;
  if (f.has('alphas_cumprod')) ctx.compare('alphas_cumprod', sched.alphasCumprod, tol64, raw('alphas_cumprod'));
  if (f.has('alphas_cumprod_f32')) ctx.compare('alphas_cumprod_f32', Float32Array.from(sched.alphasCumprod), tol32);

  const tsTol = pickTolerance(tols, 'timesteps');
  for (const name of f.keys().filter((k) => /^timesteps(_\d+)?$/.test(k))) {
    const n = name === 'timesteps' ? p.num_inference_steps : Number(name.split('_')[1]);
    ctx.compare(name, make().setTimesteps(n), tsTol, raw(name));
  }

  if (f.has('add_noise_out') || f.has('get_velocity_out')) {
    const x0 = f.tensor('add_noise_original');
    const eps = f.tensor('add_noise_noise');
    const ts = Array.from(raw('add_noise_timesteps'), Number);
    if (f.has('add_noise_out')) ctx.compare('add_noise_out', sched.addNoise(x0, eps, ts), tensorTol);
    if (f.has('get_velocity_out')) ctx.compare('get_velocity_out', sched.getVelocity(x0, eps, ts), tensorTol);
  }

  sched.setTimesteps(p.num_inference_steps);
  const steps: Array<{ prefix: string; timestep: number; timestep_back: number | null; noise_draws: number; i: number }> = [
    ...(ctx.subcase.values?.steps ?? []).map((s: any) => ({ ...s, prefix: `step${s.i}_` })),
  ];
  if (ctx.subcase.values?.final_step) steps.push({ ...ctx.subcase.values.final_step, prefix: 'final_' });
  let prevOut: { prev: tf.Tensor; x0: tf.Tensor } | undefined;
  for (const s of steps) {
    const sampleIn = f.has(`${s.prefix}sample_in`)
      ? f.tensor(`${s.prefix}sample_in`)
      : s.i === 0 ? f.tensor('step_sample_in_0') : f.tensor(`step${s.i - 1}_prev_sample`);
    const modelOutput = f.tensor(`${s.prefix}model_output`);
    let out;
    if (sched instanceof CogVideoXDDIMScheduler) {
      out = sched.step(modelOutput, s.timestep, sampleIn);
    } else {
      const draws = f.keys().filter((k) => k.startsWith(`${s.prefix}noise`)).sort();
      let used = 0;
      const noise: NoiseSource = (shape) => {
        if (used >= draws.length) throw new Error(`schedulers: step ${s.prefix} drew more noise than the ${draws.length} recorded`);
        const t = f.tensor(draws[used++]!);
        if (t.shape.join() !== shape.join()) throw new Error(`schedulers: recorded noise shape [${t.shape}] vs [${shape}]`);
        return t;
      };
      const old = s.timestep_back === null ? null
        : f.has(`${s.prefix}old_pred_original_sample`) ? f.tensor(`${s.prefix}old_pred_original_sample`)
        : f.tensor(`step${s.i - 1}_pred_original_sample`);
      out = sched.step(modelOutput, old, s.timestep, s.timestep_back, sampleIn, { noise });
      ctx.compare(`${s.prefix}noise_draws`, [used], 'exact', [s.noise_draws]);
    }
    ctx.compare(`${s.prefix}prev_sample`, out.prevSample, tensorTol);
    ctx.compare(`${s.prefix}pred_original_sample`, out.predOriginalSample, tensorTol);
    prevOut = { prev: out.prevSample, x0: out.predOriginalSample };
  }
  void prevOut;
}
