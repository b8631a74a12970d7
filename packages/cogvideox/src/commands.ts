/** The `vrepa` commands of @vrepa/cogvideox, one list assembled here (other parts add their entries). */
import type { VrepaCommand } from '@vrepa/core';
import { loraBakeCommand, loraMergeCommand } from './lora/commands.js';
import { generateCommand, initModelCommand } from './pipeline/commands.js';
import { exportCommand } from './transformer/commands.js';

export const commands: VrepaCommand[] = [loraMergeCommand, loraBakeCommand, generateCommand, initModelCommand, exportCommand];
