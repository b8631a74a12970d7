/**
 * The T5 tokenizer from a local `tokenizer.json` (+ optional `tokenizer_config.json`) through
 * `@huggingface/tokenizers` (pure JS, no network). `encodeBatch` reproduces the CogVideoX pipeline's
 * call `tokenizer(prompt, padding='max_length', max_length=226, truncation=True, add_special_tokens=True)`:
 * the prompt's pieces, truncated so the template's special tokens (T5: a trailing `</s>`) still fit,
 * then right padding with the pad id (mask 0).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

export interface TokenizerCallOptions {
  /** default 226 (CogVideoX's max_text_seq_length) */
  maxLength?: number;
  /** 'max_length' (default, the pipeline's) pads every row to maxLength; 'longest' to the longest row */
  padding?: 'max_length' | 'longest';
  /** default true */
  truncation?: boolean;
}

export interface TokenizerOutput {
  /** `[num_prompts, length]` */
  inputIds: number[][];
  /** `[num_prompts, length]`, 1 = token, 0 = padding */
  attentionMask: number[][];
  /** for each prompt, whether truncation dropped pieces */
  truncated: boolean[];
}

export class T5Tokenizer {
  readonly padId: number;
  private constructor(
    private readonly tok: Tokenizer,
    readonly config: Record<string, unknown>,
    readonly source: string,
  ) {
    const padToken = typeof config.pad_token === 'string' ? config.pad_token : '<pad>';
    const id = tok.token_to_id(padToken);
    if (id === undefined) throw new Error(`${source}: pad token '${padToken}' is not in the vocabulary`);
    this.padId = id;
  }

  /** From parsed `tokenizer.json` (and `tokenizer_config.json`) objects. */
  static fromJSON(tokenizerJson: unknown, tokenizerConfig: Record<string, unknown> = {}, source = 'tokenizer.json'): T5Tokenizer {
    if (!tokenizerJson || typeof tokenizerJson !== 'object' || !('model' in (tokenizerJson as object)))
      throw new Error(`${source}: not a tokenizers JSON (expected an object with a "model" entry)`);
    return new T5Tokenizer(new Tokenizer(tokenizerJson as object, tokenizerConfig), tokenizerConfig, source);
  }

  /** From a `tokenizer.json` file, or a folder holding `tokenizer.json` (and `tokenizer_config.json`). */
  static fromFile(p: string): T5Tokenizer {
    let file = p;
    if (fs.existsSync(p) && fs.statSync(p).isDirectory()) file = path.join(p, 'tokenizer.json');
    if (!fs.existsSync(file)) {
      const hint = fs.existsSync(path.join(path.dirname(file), 'spiece.model'))
        ? ' (the folder has only spiece.model: convert it to tokenizer.json once with transformers, T5TokenizerFast.from_pretrained(dir).save_pretrained(dir))'
        : '';
      throw new Error(`T5Tokenizer: ${file} does not exist${hint}`);
    }
    const json = readJson(file);
    const cfgFile = path.join(path.dirname(file), 'tokenizer_config.json');
    const cfg = fs.existsSync(cfgFile) ? (readJson(cfgFile) as Record<string, unknown>) : {};
    return T5Tokenizer.fromJSON(json, cfg, file);
  }

  /** Ids of one prompt with the special tokens (`</s>` for T5), untruncated and unpadded. */
  encode(prompt: string): number[] {
    return [...this.tok.encode(prompt).ids];
  }

  /** The pieces of the ids (for display). */
  tokens(ids: number[]): string[] {
    return ids.map((i) => this.tok.id_to_token(i) ?? `<${i}>`);
  }

  /** Text of ids without special tokens. */
  decode(ids: number[]): string {
    return this.tok.decode(ids, { skip_special_tokens: true });
  }

  /** Ids truncated to at most `maxLength` with the template's special tokens kept. */
  private truncate(prompt: string, maxLength: number): { ids: number[]; truncated: boolean } {
    const full = this.encode(prompt);
    if (full.length <= maxLength) return { ids: full, truncated: false };
    const plain = [...this.tok.encode(prompt, { add_special_tokens: false }).ids];
    // full = prefix + plain + suffix (single-sequence template)
    let pre = 0;
    while (pre < full.length && pre < plain.length && full[pre] !== plain[0]) pre++;
    const suf = full.length - plain.length - pre;
    if (suf < 0 || full.slice(pre, pre + plain.length).some((v, i) => v !== plain[i]))
      throw new Error(`${this.source}: cannot locate the prompt inside the post-processed ids to truncate it`);
    const room = maxLength - pre - suf;
    if (room < 0) throw new Error(`T5Tokenizer: maxLength ${maxLength} leaves no room for the ${pre + suf} special token(s)`);
    return { ids: [...full.slice(0, pre), ...plain.slice(0, room), ...full.slice(full.length - suf)], truncated: true };
  }

  /** Tokenise prompts as the CogVideoX pipeline does (padding to max_length, truncation, special tokens). */
  encodeBatch(prompts: string | string[], opts: TokenizerCallOptions = {}): TokenizerOutput {
    const list = typeof prompts === 'string' ? [prompts] : prompts;
    const maxLength = opts.maxLength ?? 226;
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new Error(`T5Tokenizer.encodeBatch: maxLength must be a positive integer, got ${maxLength}`);
    const rows = list.map((p, i) => {
      if (typeof p !== 'string') throw new Error(`T5Tokenizer.encodeBatch: prompt ${i} is ${typeof p}, expected a string`);
      return opts.truncation ?? true ? this.truncate(p, maxLength) : { ids: this.encode(p), truncated: false };
    });
    const len = (opts.padding ?? 'max_length') === 'max_length' ? Math.max(maxLength, ...rows.map((r) => r.ids.length)) : Math.max(0, ...rows.map((r) => r.ids.length));
    return {
      inputIds: rows.map((r) => [...r.ids, ...new Array<number>(len - r.ids.length).fill(this.padId)]),
      attentionMask: rows.map((r) => [...new Array<number>(r.ids.length).fill(1), ...new Array<number>(len - r.ids.length).fill(0)]),
      truncated: rows.map((r) => r.truncated),
    };
  }
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`T5Tokenizer: cannot read ${file} as JSON (${(e as Error).message})`);
  }
}
