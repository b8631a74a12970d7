import type { VrepaCommand } from '@vrepa/core';
import { physicsMetricsCommand } from './metrics-command.js';
import { physicsGenerateCommand } from './physics-command.js';
import { probeCommand } from './probe-command.js';
import { videophyScoreCommand } from './videophy-command.js';

export * from './csv.js';
export * from './rng.js';
export * from './chart.js';
export * from './videophy.js';
export * from './linalg.js';
export * from './probe.js';
export * from './feature-file.js';
export * from './physion.js';
export * from './scene-features.js';
export { probeCommand } from './probe-command.js';
export * from './geometry.js';
export * from './scenes.js';
export * from './ffmpeg.js';
export * from './png.js';
export * from './dataset.js';
export { physicsGenerateCommand } from './physics-command.js';
export * from './tracker.js';
export * from './trajectory.js';
export { physicsMetricsCommand } from './metrics-command.js';
export { videophyScoreCommand } from './videophy-command.js';

/** The `vrepa` commands this package provides. */
export const commands: VrepaCommand[] = [videophyScoreCommand, probeCommand, physicsGenerateCommand, physicsMetricsCommand];
