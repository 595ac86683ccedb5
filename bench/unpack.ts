// Layer unpack benchmark: a generated layer (many small text-like files and
// a few large random ones) unpacked by applyLayer from memory, as plain tar,
// gzip and zstd. Prints the median over runs in MB/s of uncompressed tar
// (and of the compressed blob), plus files per second.
//   node bench/unpack.ts   (as root; TSCRI_BENCH_RUNS=3, TSCRI_BENCH_LAYER_MIB=64 by default)
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { constants, gzipSync, zstdCompressSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { applyLayer } from '../src/snapshot/layer.ts';

const RUNS = Number(process.env.TSCRI_BENCH_RUNS ?? 3);
const LAYER_MIB = Number(process.env.TSCRI_BENCH_LAYER_MIB ?? 64);
const CHUNK = 64 * 1024;

/** Half the bytes in 4 KiB text-like files, half in 4 MiB random files. */
async function generateLayer(): Promise<{ tar: Buffer; files: number }> {
  const p = pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of p) chunks.push(c as Buffer);
  })();
  const half = (LAYER_MIB * 1024 * 1024) / 2;
  const line = Buffer.from('export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin # config line\n');
  let files = 0;
  p.entry({ name: 'usr/', type: 'directory', mode: 0o755 });
  for (let d = 0, written = 0; written < half; d++) {
    p.entry({ name: `usr/share/d${d}/`, type: 'directory', mode: 0o755 });
    for (let f = 0; f < 64 && written < half; f++, files++) {
      const body = Buffer.concat([Buffer.from(`file ${d}/${f}\n`), Buffer.alloc(4096 - 32, line)]);
      p.entry({ name: `usr/share/d${d}/f${f}.conf`, mode: 0o644, uid: 0, gid: 0 }, body);
      written += body.length;
    }
  }
  for (let i = 0; i * 4 * 1024 * 1024 < half; i++, files++) {
    p.entry({ name: `usr/lib/blob${i}.so`, mode: 0o755 }, randomBytes(4 * 1024 * 1024));
  }
  p.finalize();
  await done;
  return { tar: Buffer.concat(chunks), files };
}

function chunked(data: Buffer): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < data.length; i += CHUNK) yield data.subarray(i, i + CHUNK);
    })(),
  );
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const { tar, files } = await generateLayer();
const variants: Array<[string, string, Buffer]> = [
  ['tar', 'application/vnd.oci.image.layer.v1.tar', tar],
  ['gzip', 'application/vnd.oci.image.layer.v1.tar+gzip', gzipSync(tar, { level: 6 })],
  ['zstd', 'application/vnd.oci.image.layer.v1.tar+zstd', zstdCompressSync(tar, { params: { [constants.ZSTD_c_compressionLevel]: 3 } })],
];
const top = await mkdtemp(join(tmpdir(), 'tscri-bench-unpack-'));
try {
  const mb = (n: number) => n / 1e6;
  console.log(`layer: ${mb(tar.length).toFixed(1)} MB uncompressed, ${files} files, ${RUNS} runs, median`);
  console.log('format  blob MB  seconds  tar MB/s  blob MB/s  files/s');
  for (const [name, mediaType, blob] of variants) {
    const seconds: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const dir = join(top, `${name}-${run}`);
      await mkdir(dir);
      const start = process.hrtime.bigint();
      await applyLayer(chunked(blob), mediaType, dir);
      seconds.push(Number(process.hrtime.bigint() - start) / 1e9);
      await rm(dir, { recursive: true, force: true });
    }
    const s = median(seconds);
    console.log(
      `${name.padEnd(6)}  ${mb(blob.length).toFixed(1).padStart(7)}  ${s.toFixed(3).padStart(7)}  ${(mb(tar.length) / s).toFixed(1).padStart(8)}  ${(mb(blob.length) / s).toFixed(1).padStart(9)}  ${Math.round(
        files / s,
      )
        .toString()
        .padStart(7)}`,
    );
  }
} finally {
  await rm(top, { recursive: true, force: true });
}
