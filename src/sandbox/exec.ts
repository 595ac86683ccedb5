// Running the host tools the sandbox code relies on (unshare, nsenter)
// with their error output in the thrown message.
import { run as runProgram } from '../sys/spawn.ts';

export async function run(file: string, args: string[], input?: string): Promise<string> {
  let r;
  try {
    r = await runProgram(file, args, { input: input ?? '', timeoutMs: 60_000, maxBuffer: 4 * 1024 * 1024 });
  } catch (err) {
    throw new Error(`${file} ${args.join(' ')}: ${(err as Error).message}`);
  }
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr.trim() || (r.timedOut ? 'timed out' : `exit ${r.signal ?? `code ${r.code}`}`)}`);
  return r.stdout;
}
