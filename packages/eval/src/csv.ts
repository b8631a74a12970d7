/** Minimal RFC 4180 CSV reading and writing (quoted fields, doubled quotes, CRLF or LF line ends). */

export class CsvError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CsvError';
  }
}

/** Parse CSV text into rows of string fields. A trailing empty line is ignored; a UTF-8 BOM is dropped. */
export function parseCsv(text: string, what = 'CSV'): string[][] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let inQuotes = false;
  let i = 0;
  let line = 1;
  const endField = () => {
    row.push(field);
    field = '';
  };
  const endRow = () => {
    endField();
    rows.push(row);
    row = [];
  };
  while (i < text.length) {
    const c = text[i]!;
    if (inQuotes) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        inQuotes = false;
        i++;
        continue;
      }
      if (c === '\n') line++;
      field += c;
      i++;
      continue;
    }
    if (c === '"' && field === '') {
      inQuotes = true;
      i++;
    } else if (c === ',') {
      endField();
      i++;
    } else if (c === '\r' && text[i + 1] === '\n') {
      endRow();
      line++;
      i += 2;
    } else if (c === '\n') {
      endRow();
      line++;
      i++;
    } else {
      field += c;
      i++;
    }
  }
  if (inQuotes) throw new CsvError(`${what}: a quoted field opened before line ${line} is never closed.`);
  if (field !== '' || row.length > 0) endRow();
  return rows;
}

/** Parse CSV with a header row into records keyed by (trimmed) column name. */
export function parseCsvRecords(text: string, what = 'CSV'): { columns: string[]; records: Record<string, string>[] } {
  const rows = parseCsv(text, what).filter((r) => !(r.length === 1 && r[0]!.trim() === ''));
  if (rows.length === 0) throw new CsvError(`${what}: expected a header row, got an empty file.`);
  const columns = rows[0]!.map((c) => c.trim());
  const records = rows.slice(1).map((r, k) => {
    if (r.length !== columns.length)
      throw new CsvError(`${what}: data row ${k + 1} has ${r.length} fields, expected ${columns.length} (the header's columns).`);
    const rec: Record<string, string> = {};
    columns.forEach((c, j) => (rec[c] = r[j]!));
    return rec;
  });
  return { columns, records };
}

function quote(v: unknown): string {
  const s = v === undefined || v === null ? '' : typeof v === 'number' ? formatNumber(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(8)));
}

/** Serialise rows (first row = header) to CSV text with LF line ends. */
export function toCsv(rows: unknown[][]): string {
  return rows.map((r) => r.map(quote).join(',')).join('\n') + '\n';
}
