// Terminal size messages: JSON objects {"Width":W,"Height":H}, one after another.
import type { TerminalSize } from './backend.ts';

/** Feeds bytes in, calls back for each complete size object. */
export function resizeDecoder(onSize: (size: TerminalSize) => void): (chunk: Buffer) => void {
  let text = '';
  return (chunk) => {
    text += chunk.toString('utf8');
    for (;;) {
      const end = text.indexOf('}');
      if (end < 0) break;
      const start = text.indexOf('{');
      const candidate = text.slice(Math.max(start, 0), end + 1);
      text = text.slice(end + 1);
      try {
        const size = JSON.parse(candidate);
        const width = Number(size.Width ?? size.width);
        const height = Number(size.Height ?? size.height);
        if (width > 0 && height > 0 && width < 65536 && height < 65536) onSize({ width, height });
      } catch {
        // not a size object; ignore it
      }
    }
    if (text.length > 4096) text = '';
  };
}
