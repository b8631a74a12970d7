import type { VrepaCommand } from '@vrepa/core';
import { probeCommand } from './probe-command.js';
import { videophyScoreCommand } from './videophy-command.js';

export * from './csv.js';
export * from './rng.js';
export * from './chart.js';
export * from './videophy.js';
export * from './linalg.js';
export * from './probe.js';
export * from './physion.js';
export { probeCommand } from './probe-command.js';
export { videophyScoreCommand } from './videophy-command.js';

/** The `vrepa` commands this package provides. */
export const commands: VrepaCommand[] = [videophyScoreCommand, probeCommand];
