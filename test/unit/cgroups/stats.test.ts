import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseLimit, usageFromV1, usageFromV2 } from '../../../src/cgroups/stats.ts';
import { parseNetDev, StatsService } from '../../../src/container/stats.ts';
import { diskUsage } from '../../../src/snapshot/usage.ts';

test('v2 files give CPU, memory, working set, swap and pids', () => {
  const usage = usageFromV2({
    'cpu.stat': 'usage_usec 1500\nuser_usec 1000\n',
    'memory.current': '10000\n',
    'memory.stat': 'anon 4000\ninactive_file 3000\npgfault 7\npgmajfault 1\n',
    'memory.max': '20000\n',
    'memory.swap.current': '512\n',
    'memory.swap.max': 'max\n',
    'pids.current': '3\n',
  });
  assert.deepEqual(usage, {
    cpuNanos: 1_500_000,
    memoryUsage: 10000,
    workingSet: 7000,
    rss: 4000,
    pageFaults: 7,
    majorPageFaults: 1,
    memoryLimit: 20000,
    swapUsage: 512,
    swapLimit: undefined,
    processes: 3,
  });
});

test('v1 files give swap as memsw minus memory, and hierarchical totals', () => {
  const usage = usageFromV1({
    'cpuacct.usage': '123456\n',
    'memory.usage_in_bytes': '10000\n',
    'memory.stat': 'rss 1\ntotal_rss 4000\ntotal_inactive_file 12000\ntotal_pgfault 9\ntotal_pgmajfault 2\n',
    'memory.limit_in_bytes': '9223372036854771712\n',
    'memory.memsw.usage_in_bytes': '10500\n',
    'pids.current': '2\n',
  });
  assert.equal(usage.cpuNanos, 123456);
  assert.equal(usage.workingSet, 0, 'working set never goes negative');
  assert.equal(usage.rss, 4000);
  assert.equal(usage.swapUsage, 500);
  assert.equal(usage.memoryLimit, undefined, 'the v1 "unlimited" value is no limit');
  assert.equal(usage.processes, 2);
});

test('limits: max and unlimited mean none', () => {
  assert.equal(parseLimit('max\n'), undefined);
  assert.equal(parseLimit('1048576\n'), 1048576);
  assert.equal(parseLimit(undefined), undefined);
});

test('/proc/net/dev is parsed per interface', () => {
  const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    2000      20    3    0    0     0          0         0     4000      40    5    0    0     0       0          0
`;
  assert.deepEqual(parseNetDev(text), [
    { name: 'lo', rx_bytes: 100, rx_errors: 0, tx_bytes: 100, tx_errors: 0 },
    { name: 'eth0', rx_bytes: 2000, rx_errors: 3, tx_bytes: 4000, tx_errors: 5 },
  ]);
});

test('disk usage counts bytes and inodes of a writable layer', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-du-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'a'));
  await writeFile(join(dir, 'a', 'f'), Buffer.alloc(10000));
  const usage = await diskUsage(dir);
  assert.equal(usage.inodes, 3);
  assert.ok(usage.bytes >= 10000);
});

test('stats of containers without a cgroup still carry their attributes and a zero writable layer', async () => {
  const record: any = {
    id: 'c1',
    sandboxId: 'p1',
    config: { metadata: { name: 'n', attempt: 0 }, labels: { a: 'b' }, annotations: {} },
    cgroupsPath: '',
    state: 'CONTAINER_EXITED',
    pid: 0,
  };
  const stats = new StatsService({
    containers: () => [record],
    sandboxes: () => [],
    driver: 'cgroupfs',
    writableDir: () => undefined,
    mountpoint: '/var/lib/tscri',
  });
  const [s] = await stats.containerStats({ label_selector: { a: 'b' } });
  assert.equal(s!.attributes!.id, 'c1');
  assert.deepEqual(s!.writable_layer!.used_bytes, { value: 0 });
  assert.equal(s!.cpu!.usage_core_nano_seconds, null);
  assert.deepEqual(await stats.containerStats({ label_selector: { a: 'x' } }), []);
  assert.deepEqual(await stats.containerStats({ pod_sandbox_id: 'p2' }), []);
  assert.equal(stats.descriptors().length > 3, true);
});
