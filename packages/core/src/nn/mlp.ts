/** The transformer MLP: fc1 → activation → fc2 (timm / ViT names `fc1`, `fc2`). */
import * as tf from '@tensorflow/tfjs';
import { Module } from '../module.js';
import { activation, type ActivationName } from './activations.js';
import { Linear } from './linear.js';
import type { InitOptions } from './init.js';

export interface MLPOptions extends InitOptions {
  /** default inFeatures */
  outFeatures?: number;
  /** default 'gelu' (exact) */
  activation?: ActivationName | string;
  /** biases on fc1 and fc2; default true */
  bias?: boolean;
}

/** `[..., in]` → fc1 `[..., hidden]` → act → fc2 `[..., out]`. */
export class MLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  private readonly act: (x: tf.Tensor) => tf.Tensor;
  constructor(inFeatures: number, hiddenFeatures: number, opts: MLPOptions = {}) {
    super();
    this.fc1 = this.module('fc1', new Linear(inFeatures, hiddenFeatures, opts));
    this.fc2 = this.module('fc2', new Linear(hiddenFeatures, opts.outFeatures ?? inFeatures, opts));
    this.act = activation(opts.activation ?? 'gelu');
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.fc2.forward(this.act(this.fc1.forward(x))));
  }
}
