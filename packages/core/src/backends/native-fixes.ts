/**
 * Fixes for the native `tensorflow` backend (tfjs-node built against TensorFlow 2.21): `Round` on int32
 * returns zeros there (the one tfjs-core spec that fails on it, ../shared/notes/tfjs-node-offline.md);
 * rounding an integer is the identity, so int32 inputs get a copy and floats keep the stock kernel.
 */
import * as tf from '@tensorflow/tfjs';

let installed = false;

export function installNativeKernelFixes(): void {
  if (installed) return;
  const round = tf.getKernel('Round', 'tensorflow');
  const identity = tf.getKernel('Identity', 'tensorflow');
  if (!round || !identity) return;
  tf.unregisterKernel('Round', 'tensorflow');
  tf.registerKernel({
    ...round,
    kernelFunc: (args) => (args.inputs.x!.dtype === 'int32' ? identity.kernelFunc(args) : round.kernelFunc(args)),
  });
  installed = true;
}
