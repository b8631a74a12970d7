/**
 * The page's tfjs backend: WebGL first (float32 textures required: the relations are cosines compared to
 * a 0.1 margin; a software renderer such as headless chromium's SwiftShader is skipped, wasm being ~10×
 * faster on a CPU), then wasm (SIMD; with core's kernel fixes, as in Node), then cpu. `?backend=` forces one.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import wasmUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import simdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import threadedUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { installWasmExtraKernels, installWasmKernels } from '@vrepa/core';

export interface BackendChoice {
  name: string;
  /** why earlier candidates were skipped */
  skipped: string[];
}

/** The WebGL renderer's name when it is a software one (SwiftShader, llvmpipe), else undefined. */
function softwareRenderer(): string | undefined {
  const gl = document.createElement('canvas').getContext('webgl2') ?? document.createElement('canvas').getContext('webgl');
  if (!gl) return undefined;
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  const name = String(info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER));
  return /swiftshader|llvmpipe|softpipe|software/i.exec(name)?.[0];
}

async function tryWebgl(forced: boolean): Promise<string | undefined> {
  try {
    const soft = forced ? undefined : softwareRenderer();
    if (soft) return `webgl: software renderer (${soft}); wasm is faster on a CPU (?backend=webgl forces it)`;
    if (!(await tf.setBackend('webgl'))) return 'webgl: no WebGL context';
    await tf.ready();
    if (!tf.env().getBool('WEBGL_RENDER_FLOAT32_ENABLED')) return 'webgl: no float32 render targets';
    return undefined;
  } catch (e) {
    return `webgl: ${(e as Error).message}`;
  }
}

async function tryWasm(): Promise<string | undefined> {
  try {
    setWasmPaths({ 'tfjs-backend-wasm.wasm': wasmUrl, 'tfjs-backend-wasm-simd.wasm': simdUrl, 'tfjs-backend-wasm-threaded-simd.wasm': threadedUrl });
    if (!(await tf.setBackend('wasm'))) return 'wasm: setBackend failed';
    await tf.ready();
    installWasmKernels();
    installWasmExtraKernels();
    return undefined;
  } catch (e) {
    return `wasm: ${(e as Error).message}`;
  }
}

export async function chooseBackend(forced?: string | null): Promise<BackendChoice> {
  const order: Array<[string, () => Promise<string | undefined>]> = [
    ['webgl', () => tryWebgl(forced === 'webgl')],
    ['wasm', tryWasm],
    ['cpu', async () => ((await tf.setBackend('cpu')) ? undefined : 'cpu: setBackend failed')],
  ];
  const skipped: string[] = [];
  for (const [name, attempt] of forced ? order.filter(([n]) => n === forced) : order) {
    const why = await attempt();
    if (!why) return { name: tf.getBackend(), skipped };
    skipped.push(why);
  }
  throw new Error(`no tfjs backend could start (${skipped.join('; ')})`);
}
