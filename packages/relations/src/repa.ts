/** REPA (the baseline): −mean over tokens of cos(student_i, teacher_i), official 'cosine_similarity' branch. */
import * as tf from '@tensorflow/tfjs';
import { l2Normalize, stopGradient } from './normalize.js';
import { assertPair, assertTokens } from './validate.js';

/**
 * REPA loss between student `[B, N, D]` (already projected to the teacher's dim) and teacher `[B, N, D]`:
 * −(1/(B·N))·Σ_i n(student_i)·n(teacher_i), rows normalised as torch `F.normalize` (eps 1e-12).
 * The teacher is a constant (zero gradient).
 */
export function repaLoss(student: tf.Tensor3D, teacher: tf.Tensor3D): tf.Scalar {
  assertTokens(student, 'repaLoss: student');
  assertTokens(teacher, 'repaLoss: teacher');
  assertPair(student, teacher, 'repaLoss', true);
  return tf.tidy(() => {
    const cos = tf.sum(tf.mul(l2Normalize(student), stopGradient(l2Normalize(teacher))), -1);
    return tf.neg(tf.mean(cos)) as tf.Scalar;
  });
}
