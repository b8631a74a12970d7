// train-tiny: the whole VideoREPA finetuning loop on 2 CPU cores, in a couple of minutes.
//  1. a random tiny CogVideoX pipeline (VAE + T5 + tokenizer)          vrepa init-model --preset tiny
//  2. simulated physics clips with captions                            vrepa physics generate
//  3. caches: VAE latents, T5 embeddings, teacher (VideoMAEv2-style)   vrepa prepare
//  4. training, stopped half-way, then resumed from its checkpoint     vrepa train [--resume]
//  5. a video from the finetuned transformer                           vrepa generate
// Everything lands in ./work (delete it to start over).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { commands as cogCommands } from '@vrepa/cogvideox';
import { commands as evalCommands } from '@vrepa/eval';
import { commands as trainerCommands, readLog } from '@vrepa/trainer';

const here = path.dirname(fileURLToPath(import.meta.url));
process.chdir(here);
const work = path.join(here, 'work');
const all = [...cogCommands, ...evalCommands, ...trainerCommands];
async function vrepa(...argv) {
  const name = all.map((c) => c.name).filter((n) => argv.join(' ').startsWith(n)).sort((a, b) => b.length - a.length)[0];
  const cmd = all.find((c) => c.name === name);
  console.log(`\n$ vrepa ${argv.join(' ')}`);
  const code = await cmd.run(argv.slice(name.split(' ').length));
  if (code !== 0) throw new Error(`vrepa ${argv.join(' ')} exited with ${code}`);
}

fs.rmSync(path.join(work, 'run'), { recursive: true, force: true });
if (!fs.existsSync(path.join(work, 'pipeline/model_index.json'))) await vrepa('init-model', '--preset', 'tiny', '--out', 'work/pipeline', '--seed', '0');
if (!fs.existsSync(path.join(work, 'scenes/labels.csv'))) {
  await vrepa('physics', 'generate', '--subset', 'roll,collide,drop', '--n', '4', '--seed', '1', '--out', 'work/scenes', '--size', '64x48', '--frames', '12', '--context', '4');
}
// captions from the scene labels (OpenVid-style CSV: video, caption)
const labels = fs.readFileSync('work/scenes/labels.csv', 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
const captions = labels.map(([clip, subset, , contact]) => `${clip}.mp4,"a ${subset} scene: the two objects ${contact === '1' ? 'touch' : 'do not touch'}"`);
fs.writeFileSync('work/scenes/captions.csv', ['video,caption', ...captions].join('\n') + '\n');

await vrepa('prepare', '--config', 'config.scenes.json');
await vrepa('train', '--config', 'config.scenes.json', '--out', 'work/run', '--max-steps', '15');
await vrepa('train', '--config', 'config.scenes.json', '--out', 'work/run', '--resume');

const rows = readLog('work/run/log.jsonl');
const mean = (r) => r.reduce((a, x) => a + x.loss, 0) / r.length;
console.log(`\nloss, mean of the first 5 steps: ${mean(rows.slice(0, 5)).toFixed(4)}; of the last 5: ${mean(rows.slice(-5)).toFixed(4)} (${rows.length} steps)`);

// the finetuned transformer in the tiny pipeline → a video
fs.rmSync('work/pipeline-trained', { recursive: true, force: true });
fs.cpSync('work/pipeline', 'work/pipeline-trained', { recursive: true });
fs.rmSync('work/pipeline-trained/transformer', { recursive: true, force: true });
fs.cpSync('work/run/final/transformer', 'work/pipeline-trained/transformer', { recursive: true });
await vrepa('generate', '--model', 'work/pipeline-trained', '--prompt', 'a roll scene: the two objects touch', '--out', 'work/sample.gif', '--steps', '10', '--overwrite');
console.log('\nwrote work/run (checkpoints, log.jsonl, tensorboard/, loss.png, final/) and work/sample.gif');
