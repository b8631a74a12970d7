/**
 * `openCheckpoint` in the browser entry: same signature as the Node one, so code that loads by path or by
 * bytes (e.g. teachers' fromCheckpoint) bundles for the web; a path cannot be read there, and it says so.
 */
import { CheckpointError, type Checkpoint, type OpenCheckpointOptions } from './checkpoint-source.js';

export function openCheckpoint(p: string, _opts: OpenCheckpointOptions = {}): Checkpoint {
  throw new CheckpointError(p, "reading a checkpoint from a path needs Node's file system; in the browser pass the file's bytes (openCheckpointBytes, or a teacher's fromCheckpoint(bytes))");
}
