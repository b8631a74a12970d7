/**
 * The Node file API of safetensors (and `.pth` writing), as the browser entry sees it: the same names, so code that reads or
 * writes files in Node bundles for the web unchanged; called there, each says what to use instead.
 */
import { SafetensorsError } from './safetensors-bytes.js';

const NO_FILES = "needs Node's file system; in the browser read bytes with SafetensorsBytes.from(arrayBuffer) and write them with serializeSafetensors(tensors)";

/** Browser stand-in for the Node file reader: `open` throws (use SafetensorsBytes). */
export class SafetensorsFile {
  private constructor() {}
  static open(path: string): never {
    throw new SafetensorsError(path, `opening a safetensors file ${NO_FILES}`);
  }
}

export function withSafetensors(path: string, _fn: (f: never) => unknown): never {
  throw new SafetensorsError(path, `opening a safetensors file ${NO_FILES}`);
}

export function writeSafetensors(path: string, ..._rest: unknown[]): never {
  throw new SafetensorsError(path, `writing a safetensors file ${NO_FILES}`);
}

export function writeSafetensorsStream(path: string, ..._rest: unknown[]): never {
  throw new SafetensorsError(path, `writing a safetensors file ${NO_FILES}`);
}

export function writePth(file: string, ..._rest: unknown[]): never {
  throw new Error(`${file}: writing a .pth file needs Node's file system; in the browser save safetensors bytes with serializeSafetensors(tensors)`);
}
