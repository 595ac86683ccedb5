import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordStore, VOLATILE, assertSafeId, writeFileAtomic } from '../../../src/store/store.ts';
import { KeyedLock, SharedKeyedLock } from '../../../src/store/lock.ts';
import { mountTmpfs } from '../../helpers/tmpfs.ts';

interface Thing {
  id: string;
  value: number;
}

async function tempDir(t: { after: (fn: () => Promise<void>) => void }) {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('records survive a reload', async (t) => {
  const dir = await tempDir(t);
  const store = new RecordStore<Thing>(dir);
  await store.load();
  await store.put({ id: 'a1', value: 1 });
  await store.put({ id: 'b2', value: 2 });
  await store.put({ id: 'a1', value: 3 });
  await store.delete('b2');
  const again = new RecordStore<Thing>(dir);
  assert.deepEqual(await again.load(), [{ id: 'a1', value: 3 }]);
});

test('leftovers of an interrupted write are ignored and removed at load', async (t) => {
  const dir = await tempDir(t);
  const store = new RecordStore<Thing>(dir);
  await store.load();
  await store.put({ id: 'x', value: 1 });
  // A crash between writing the temporary file and renaming it leaves this behind.
  await writeFile(join(dir, 'x.json.tmp-abc123'), '{"id":"x","val');
  const again = new RecordStore<Thing>(dir);
  assert.deepEqual(await again.load(), [{ id: 'x', value: 1 }]);
  assert.deepEqual(await readdir(dir), ['x.json']);
});

test('with a check, records that are not JSON, name another id or fail it are skipped and reported', async (t) => {
  const dir = await tempDir(t);
  const store = new RecordStore<Thing>(dir);
  await store.load();
  await store.put({ id: 'good', value: 1 });
  await writeFile(join(dir, 'torn.json'), '{"id":"torn","val');
  await writeFile(join(dir, 'moved.json'), '{"id":"good","value":9}');
  await writeFile(join(dir, 'typed.json'), '{"id":"typed","value":"nine"}');
  const skipped: string[] = [];
  const again = new RecordStore<Thing>(dir);
  const loaded = await again.load({
    check: (v) => {
      if (typeof (v as Thing).value !== 'number') throw new Error('value must be a number');
    },
    onInvalid: (file) => skipped.push(file.slice(dir.length + 1)),
  });
  assert.deepEqual(loaded, [{ id: 'good', value: 1 }]);
  assert.deepEqual(skipped.sort(), ['moved.json', 'torn.json', 'typed.json']);
  assert.deepEqual((await readdir(dir)).sort(), ['good.json', 'moved.json', 'torn.json', 'typed.json'], 'skipped files stay for an operator to read');
});

test('find accepts a unique prefix only', async (t) => {
  const store = new RecordStore<Thing>(await tempDir(t));
  await store.load();
  await store.put({ id: 'abc1', value: 1 });
  await store.put({ id: 'abd2', value: 2 });
  assert.equal(store.find('abc')?.value, 1);
  assert.equal(store.find('ab'), undefined);
  assert.equal(store.find('abd2')?.value, 2);
  assert.equal(store.find(''), undefined);
});

test('ids that are paths are refused', async (t) => {
  const store = new RecordStore<Thing>(await tempDir(t));
  await store.load();
  for (const id of ['../evil', 'a/b', '', '.hidden', 'a..b']) {
    await assert.rejects(store.put({ id, value: 0 }), /invalid record id/);
  }
  assert.doesNotThrow(() => assertSafeId('sha256:' + 'a'.repeat(64)));
  assert.doesNotThrow(() => assertSafeId('sha512:' + 'a'.repeat(128)));
  assert.throws(() => assertSafeId('a'.repeat(201)), /invalid record id/);
});

test('a write that fails on a full disk leaves the old file and no temporary file', async (t) => {
  const fs = await mountTmpfs(64 * 1024);
  t.after(() => fs.remove());
  const file = join(fs.dir, 'record.json');
  await writeFileAtomic(file, 'old');
  await assert.rejects(writeFileAtomic(file, Buffer.alloc(1024 * 1024, 1)), { code: 'ENOSPC' });
  assert.deepEqual(await readdir(fs.dir), ['record.json']);
  assert.equal(await readFile(file, 'utf8'), 'old');
  const store = new RecordStore<Thing & { pad: string }>(join(fs.dir, 'store'));
  await store.load();
  await store.put({ id: 'a', value: 1, pad: '' });
  await assert.rejects(store.put({ id: 'a', value: 2, pad: 'x'.repeat(1024 * 1024) }), { code: 'ENOSPC' });
  assert.equal(store.get('a')?.value, 1, 'memory keeps what the disk has');
  assert.deepEqual(await readdir(store.dir), ['a.json']);
});

test('writeFileAtomic replaces content whole', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'f');
  await writeFileAtomic(file, 'one');
  await writeFileAtomic(file, 'two');
  assert.deepEqual(await readdir(dir), ['f']);
});

test('volatile writes (files under --state) replace content whole too, with the mode asked for', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'f');
  await writeFileAtomic(file, 'one', 0o644, VOLATILE);
  await writeFileAtomic(file, 'two', 0o644, VOLATILE);
  assert.equal(await readFile(file, 'utf8'), 'two');
  assert.equal((await stat(file)).mode & 0o777, 0o644);
  assert.deepEqual(await readdir(dir), ['f']);
});

test('a record written again (no directory sync) reads back its last content after a reload', async (t) => {
  const dir = await tempDir(t);
  const store = new RecordStore<Thing>(dir);
  await store.load();
  const thing = { id: 'a', value: 1 };
  await store.put(thing);
  thing.value = 2;
  await store.put(thing);
  await store.update(thing, { value: 3 });
  const again = new RecordStore<Thing>(dir);
  await again.load();
  assert.equal(again.get('a')?.value, 3);
  assert.deepEqual(await readdir(dir), ['a.json']);
});

test('KeyedLock serialises one key and lets other keys run', async () => {
  const lock = new KeyedLock();
  const events: string[] = [];
  let releaseA!: () => void;
  const gateA = new Promise<void>((r) => (releaseA = r));
  const first = lock.with('a', async () => {
    events.push('a1 start');
    await gateA;
    events.push('a1 end');
  });
  const second = lock.with('a', async () => {
    events.push('a2');
  });
  await lock.with('b', async () => {
    events.push('b');
  });
  assert.deepEqual(events, ['a1 start', 'b']);
  releaseA();
  await Promise.all([first, second]);
  assert.deepEqual(events, ['a1 start', 'b', 'a1 end', 'a2']);
  assert.equal(lock.isHeld('a'), false);
});

test('KeyedLock releases after a failure', async () => {
  const lock = new KeyedLock();
  await assert.rejects(
    lock.with('k', async () => {
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.equal(await lock.with('k', async () => 42), 42);
});

test('SharedKeyedLock: shared holders run together, an exclusive one alone, in arrival order', async () => {
  const lock = new SharedKeyedLock();
  const events: string[] = [];
  const gate = () => {
    let open!: () => void;
    const p = new Promise<void>((r) => (open = r));
    return { p, open };
  };
  const g1 = gate();
  const g2 = gate();
  const s1 = lock.shared('pod', async () => {
    events.push('s1');
    await g1.p;
    events.push('s1 end');
  });
  const s2 = lock.shared('pod', async () => {
    events.push('s2');
    await g2.p;
    events.push('s2 end');
  });
  const x = lock.exclusive('pod', async () => {
    events.push('x');
  });
  // Arriving after the exclusive waiter, s3 waits for it.
  const s3 = lock.shared('pod', async () => {
    events.push('s3');
  });
  await lock.exclusive('other', async () => {
    events.push('other');
  });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(events, ['s1', 's2', 'other']);
  g1.open();
  await s1;
  assert.deepEqual(events, ['s1', 's2', 'other', 's1 end']);
  g2.open();
  await Promise.all([s2, x, s3]);
  assert.deepEqual(events, ['s1', 's2', 'other', 's1 end', 's2 end', 'x', 's3']);
  await assert.rejects(
    lock.exclusive('pod', async () => {
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.equal(await lock.shared('pod', async () => 7), 7);
});

test('directories an earlier version made wider are narrowed to 0700; root and state themselves are only reported', async () => {
  const { secureDirs } = await import('../../../src/store/dir-modes.ts');
  const { chmod, mkdir: mkdirp, mkdtemp: mktemp, stat: statOf, rm: remove } = await import('node:fs/promises');
  const { tmpdir: tmp } = await import('node:os');
  const base = await mktemp(join(tmp(), 'tscri-modes-'));
  try {
    const root = join(base, 'root');
    const state = join(base, 'state');
    for (const dir of [join(root, 'snapshots'), join(state, 'containers'), join(state, 'pods'), join(state, 'ns', 'net')])
      await mkdirp(dir, { recursive: true });
    for (const dir of [root, state, join(root, 'snapshots'), join(state, 'containers'), join(state, 'pods'), join(state, 'ns'), join(state, 'ns', 'net')])
      await chmod(dir, 0o755);
    const warnings = await secureDirs(root, state);
    const mode = async (dir: string) => (await statOf(dir)).mode & 0o777;
    for (const dir of ['containers', 'pods', 'ns', 'ns/net', 'ns/ipc', 'exits', 'sockets', 'runtime']) assert.equal(await mode(join(state, dir)), 0o700, dir);
    assert.equal(await mode(join(root, 'snapshots')), 0o700);
    assert.equal(await mode(root), 0o755, "the operator's directory is left as it is");
    assert.equal(warnings.length, 2);
    assert.match(warnings[0]!, /mode 755/);
    await chmod(root, 0o700);
    await chmod(state, 0o711);
    assert.deepEqual(await secureDirs(root, state), []);
  } finally {
    await remove(base, { recursive: true, force: true });
  }
});
