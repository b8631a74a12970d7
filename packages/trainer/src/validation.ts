/**
 * Periodic validation videos: the model being trained, dropped into a pipeline folder's VAE / T5 /
 * scheduler, generates fixed prompts with a fixed seed; written as GIF + contact-sheet PNG to
 * `OUT/validation/step-<n>-<i>.gif`.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CogVideoXPipeline, contactSheet, encodePng, videoToRgbBytes, writeVideo, type CogVideoXTransformer3DModel } from '@vrepa/cogvideox';

export class Validator {
  private pipe: CogVideoXPipeline | null = null;

  constructor(
    private readonly pipelineDir: string,
    private readonly model: CogVideoXTransformer3DModel,
    private readonly opts: { prompts: string[]; steps: number; seed: number; guidance: number },
  ) {}

  private pipeline(): CogVideoXPipeline {
    if (!this.pipe) {
      const loaded = CogVideoXPipeline.fromPretrained(this.pipelineDir);
      loaded.components.transformer.dispose(); // the trained model replaces the folder's transformer
      this.pipe = new CogVideoXPipeline({ ...loaded.components, transformer: this.model });
    }
    return this.pipe;
  }

  /** Generate every prompt; returns the written GIF paths. */
  async run(outDir: string, step: number): Promise<string[]> {
    fs.mkdirSync(outDir, { recursive: true });
    const files: string[] = [];
    for (const [i, prompt] of this.opts.prompts.entries()) {
      const { video, latents } = await this.pipeline().generate({ prompt, numInferenceSteps: this.opts.steps, guidanceScale: this.opts.guidance, seed: this.opts.seed, maxSequenceLength: this.model.config.max_text_seq_length });
      const v = videoToRgbBytes(video!);
      tf.dispose([video!, latents]);
      const file = path.join(outDir, `step-${step}-${i}.gif`);
      await writeVideo(file, v.rgb, v, { fps: 8, overwrite: true });
      const sheet = contactSheet(v.rgb, v);
      fs.writeFileSync(file.replace(/\.gif$/, '.png'), encodePng(sheet.rgb, sheet.width, sheet.height));
      files.push(file);
    }
    return files;
  }

  dispose(): void {
    if (this.pipe) {
      this.pipe.components.textEncoder.dispose();
      this.pipe.components.vae.dispose();
    }
    this.pipe = null;
  }
}
