// Short, secret-free summaries of requests and responses for debug logs.

const SECRET_KEYS = new Set(['auth', 'password', 'identity_token', 'registry_token', 'username']);
const MAX_STRING = 200;
const MAX_ITEMS = 10;
const MAX_TOTAL = 2000;

export function summarize(message: unknown): string {
  const text = JSON.stringify(message, (key, value) => {
    if (SECRET_KEYS.has(key)) return value ? '[redacted]' : value;
    if (typeof value === 'string' && value.length > MAX_STRING) return `${value.slice(0, MAX_STRING)}…(${value.length} chars)`;
    if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `<${value.length} bytes>`;
    if (value && typeof value === 'object' && value.type === 'Buffer' && Array.isArray(value.data)) return `<${value.data.length} bytes>`;
    if (Array.isArray(value) && value.length > MAX_ITEMS) return [...value.slice(0, MAX_ITEMS), `…(${value.length} items)`];
    return value;
  });
  if (text === undefined) return '';
  return text.length > MAX_TOTAL ? `${text.slice(0, MAX_TOTAL)}…` : text;
}
