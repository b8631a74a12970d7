import type { VrepaCommand } from '@vrepa/core';
import { videophyScoreCommand } from './videophy-command.js';

export * from './csv.js';
export * from './rng.js';
export * from './chart.js';
export * from './videophy.js';
export { videophyScoreCommand } from './videophy-command.js';

/** The `vrepa` commands this package provides. */
export const commands: VrepaCommand[] = [videophyScoreCommand];
