import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detailFromV1, detailFromV2, parseBlkioV1, parseIoStat, parsePressure, weightToShares } from '../../../src/cgroups/stats.ts';
import {
  BASE_LABEL_KEYS,
  containerMetrics,
  metricDescriptors,
  parseMaxOpenFiles,
  parseNetDevCounters,
  podMetrics,
  type ContainerFacts,
} from '../../../src/container/metrics.ts';

// What critest (cri-tools 1.36) expects ListMetricDescriptors to list.
const CRITEST_NAMES = `container_blkio_device_usage_total container_cpu_cfs_periods_total container_cpu_cfs_throttled_periods_total
container_cpu_cfs_throttled_seconds_total container_cpu_system_seconds_total container_cpu_usage_seconds_total container_cpu_user_seconds_total
container_file_descriptors container_fs_inodes_free container_fs_inodes_total container_fs_limit_bytes container_fs_reads_bytes_total
container_fs_reads_total container_fs_usage_bytes container_fs_writes_bytes_total container_fs_writes_total container_hugetlb_max_usage_bytes
container_hugetlb_usage_bytes container_last_seen container_memory_cache container_memory_failcnt container_memory_failures_total
container_memory_kernel_usage container_memory_mapped_file container_memory_max_usage_bytes container_memory_rss container_memory_swap
container_memory_usage_bytes container_memory_working_set_bytes container_network_receive_bytes_total container_network_receive_errors_total
container_network_receive_packets_dropped_total container_network_receive_packets_total container_network_transmit_bytes_total
container_network_transmit_errors_total container_network_transmit_packets_dropped_total container_network_transmit_packets_total
container_oom_events_total container_pressure_cpu_stalled_seconds_total container_pressure_cpu_waiting_seconds_total
container_pressure_io_stalled_seconds_total container_pressure_io_waiting_seconds_total container_pressure_memory_stalled_seconds_total
container_pressure_memory_waiting_seconds_total container_processes container_sockets container_spec_cpu_period container_spec_cpu_quota
container_spec_cpu_shares container_spec_memory_limit_bytes container_spec_memory_reservation_limit_bytes container_spec_memory_swap_limit_bytes
container_start_time_seconds container_threads container_threads_max container_ulimits_soft`.split(/\s+/);

test('descriptors: every cAdvisor name critest expects, each with help and the base label keys first', () => {
  const descs = metricDescriptors();
  const names = new Set(descs.map((d) => d.name));
  assert.deepEqual(
    CRITEST_NAMES.filter((n) => !names.has(n)),
    [],
  );
  assert.equal(names.size, descs.length, 'names are unique');
  for (const d of descs) {
    assert.ok(d.help, d.name);
    assert.deepEqual(d.label_keys!.slice(0, BASE_LABEL_KEYS.length), BASE_LABEL_KEYS, d.name);
  }
  assert.deepEqual(descs.find((d) => d.name === 'container_network_receive_bytes_total')!.label_keys, [...BASE_LABEL_KEYS, 'interface']);
  assert.deepEqual(descs.find((d) => d.name === 'container_blkio_device_usage_total')!.label_keys, [
    ...BASE_LABEL_KEYS,
    'device',
    'major',
    'minor',
    'operation',
  ]);
});

const V1_FILES = {
  'cpuacct.usage': '3500000000\n',
  'cpuacct.usage_user': '2000000000\n',
  'cpuacct.usage_sys': '1500000000\n',
  'cpu.stat': 'nr_periods 40\nnr_throttled 4\nthrottled_time 2500000000\n',
  'cpu.shares': '1024\n',
  'cpu.cfs_quota_us': '20000\n',
  'cpu.cfs_period_us': '100000\n',
  'memory.usage_in_bytes': '10000\n',
  'memory.max_usage_in_bytes': '12000\n',
  'memory.stat': 'total_cache 3000\ntotal_rss 4000\ntotal_mapped_file 500\ntotal_inactive_file 1000\ntotal_pgfault 9\ntotal_pgmajfault 2\n',
  'memory.limit_in_bytes': '67108864\n',
  'memory.memsw.usage_in_bytes': '10000\n',
  'memory.memsw.limit_in_bytes': '67108864\n',
  'memory.failcnt': '3\n',
  'memory.kmem.usage_in_bytes': '800\n',
  'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 1\n',
  'memory.soft_limit_in_bytes': '9223372036854771712\n',
  'cgroup.procs': '12\n34\n',
  'pids.current': '2\n',
  'pids.max': 'max\n',
  'blkio.throttle.io_service_bytes_recursive': '8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\nTotal 12288\n',
  'blkio.throttle.io_serviced_recursive': '8:0 Read 1\n8:0 Write 2\nTotal 3\n',
  'hugetlb.2MB.usage_in_bytes': '0\n',
  'hugetlb.2MB.max_usage_in_bytes': '2097152\n',
  'cpu.pressure': 'some avg10=0.00 avg60=0.00 avg300=0.00 total=2500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\n',
};

test('v1 detail: CPU split and throttling, memory breakdown, OOM kills, limits, block I/O, hugepages, pressure', () => {
  const d = detailFromV1(V1_FILES);
  assert.deepEqual(d.cpu, {
    totalNanos: 3.5e9,
    userNanos: 2e9,
    systemNanos: 1.5e9,
    periods: 40,
    throttledPeriods: 4,
    throttledNanos: 2.5e9,
    shares: 1024,
    quota: 20000,
    period: 100000,
  });
  assert.equal(d.memory.cache, 3000);
  assert.equal(d.memory.mappedFile, 500);
  assert.equal(d.memory.workingSet, 9000);
  assert.equal(d.memory.maxUsage, 12000);
  assert.equal(d.memory.kernel, 800);
  assert.equal(d.memory.failcnt, 3);
  assert.equal(d.memory.oomKills, 1);
  assert.equal(d.memory.limit, 64 << 20);
  assert.equal(d.memory.swapLimit, 64 << 20);
  assert.equal(d.memory.reservation, undefined, 'the unlimited soft limit is none');
  assert.deepEqual(d.pids, { current: 2, max: undefined });
  assert.deepEqual(d.io, [{ major: 8, minor: 0, readBytes: 4096, writeBytes: 8192, reads: 1, writes: 2 }]);
  assert.deepEqual(d.hugetlb, [{ pagesize: '2MB', usage: 0, maxUsage: 2097152 }]);
  assert.deepEqual(d.pressure.cpu, { some: 2500000, full: 1000000 });
  assert.deepEqual(d.procs, [12, 34]);
  // Without usage_user/usage_sys, cpuacct.stat's USER_HZ ticks are used.
  const ticks = detailFromV1({ ...V1_FILES, 'cpuacct.usage_user': undefined, 'cpuacct.usage_sys': undefined, 'cpuacct.stat': 'user 150\nsystem 50\n' });
  assert.equal(ticks.cpu.userNanos, 1.5e9);
  assert.equal(ticks.cpu.systemNanos, 0.5e9);
  assert.equal(detailFromV1({ ...V1_FILES, 'cpu.cfs_quota_us': '-1\n' }).cpu.quota, undefined);
});

test('v2 detail: cpu.max, weight as shares, memory.events, swap limit as memory + swap, io.stat', () => {
  const d = detailFromV2({
    'cpu.stat': 'usage_usec 3000\nuser_usec 2000\nsystem_usec 1000\nnr_periods 5\nnr_throttled 1\nthrottled_usec 700\n',
    'cpu.max': '20000 100000\n',
    'cpu.weight': '100\n',
    'memory.current': '10000\n',
    'memory.peak': '15000\n',
    'memory.stat': 'anon 4000\nfile 3000\nfile_mapped 200\nkernel 900\ninactive_file 1000\npgfault 7\npgmajfault 1\n',
    'memory.max': '1000000\n',
    'memory.swap.current': '0\n',
    'memory.swap.max': '500000\n',
    'memory.events': 'low 0\nhigh 0\nmax 6\noom 1\noom_kill 1\n',
    'memory.low': '4096\n',
    'pids.current': '1\n',
    'pids.max': '100\n',
    'io.stat': '254:0 rbytes=100 wbytes=200 rios=3 wios=4 dbytes=0 dios=0\n',
    'memory.pressure': 'some avg10=0.00 avg60=0.00 avg300=0.00 total=10\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=5\n',
    'hugetlb.2MB.current': '0\n',
    'cgroup.procs': '7\n',
  });
  assert.deepEqual(d.cpu, {
    totalNanos: 3e6,
    userNanos: 2e6,
    systemNanos: 1e6,
    periods: 5,
    throttledPeriods: 1,
    throttledNanos: 7e5,
    shares: 2597,
    quota: 20000,
    period: 100000,
  });
  assert.equal(d.memory.maxUsage, 15000);
  assert.equal(d.memory.kernel, 900);
  assert.equal(d.memory.failcnt, 6);
  assert.equal(d.memory.oomKills, 1);
  assert.equal(d.memory.swapLimit, 1500000);
  assert.equal(d.memory.reservation, 4096);
  assert.deepEqual(d.pids, { current: 1, max: 100 });
  assert.deepEqual(d.io, [{ major: 254, minor: 0, readBytes: 100, writeBytes: 200, reads: 3, writes: 4 }]);
  assert.deepEqual(d.pressure, { cpu: undefined, memory: { some: 10, full: 5 }, io: undefined });
  assert.deepEqual(d.hugetlb, [{ pagesize: '2MB', usage: 0 }]);
  assert.equal(detailFromV2({ 'cpu.max': 'max 100000\n' }).cpu.quota, undefined);
});

test('weights convert back to the shares runc converted them from', () => {
  assert.equal(weightToShares(1), 2);
  assert.equal(weightToShares(10000), 262144);
  // runc: weight = 1 + ((shares - 2) * 9999) / 262142, so 1024 shares are weight 39.
  assert.equal(Math.abs(weightToShares(39) - 1024) < 30, true);
});

test('malformed cgroup and proc files give nothing rather than wrong numbers', () => {
  assert.equal(parsePressure('garbage\n'), undefined);
  assert.equal(parsePressure(undefined), undefined);
  assert.deepEqual(parsePressure('some total=abc\nfull avg10=1 total=9\n'), { full: 9 });
  assert.deepEqual([...parseBlkioV1('8:0 Read x\nnonsense\n../.. Read 1\n').keys()], []);
  assert.deepEqual(parseIoStat('x:y rbytes=1\n\0\n'), []);
  assert.deepEqual(parseNetDevCounters('a\nb\n  eth0: 1 2 3\n  bad line\n'), []);
  assert.equal(parseMaxOpenFiles('Max open files            unlimited            unlimited            files\n'), undefined);
  assert.equal(parseMaxOpenFiles('Max open files            1024                 4096                 files\n'), 1024);
  assert.equal(parseMaxOpenFiles(undefined), undefined);
});

test('samples line up with their descriptor: base label values, then the extra ones', () => {
  const descs = new Map(metricDescriptors().map((d) => [d.name, d.label_keys!]));
  const record: any = { id: 'c1', imageRef: 'registry.k8s.io/busybox:1.28', config: { metadata: { name: 'web' } }, pid: 12 };
  const pod: any = { id: 'p1', config: { metadata: { name: 'pod-a', namespace: 'ns-a' } } };
  const facts: ContainerFacts = {
    cgroup: detailFromV1(V1_FILES),
    processes: { threads: 3, fds: 10, sockets: 2 },
    maxOpenFiles: 1024,
    fs: { usageBytes: 4096, limitBytes: 1 << 30, inodesTotal: 1000, inodesFree: 900 },
    deviceNames: new Map([['8:0', '/dev/sda']]),
    startedAt: 1700000000,
    now: 1700000100,
  };
  const metrics = containerMetrics(record, pod, facts, 5);
  for (const m of metrics) {
    assert.equal(m.label_values!.length, descs.get(m.name!)!.length, m.name);
    assert.deepEqual(m.label_values!.slice(0, 5), ['c1', 'registry.k8s.io/busybox:1.28', 'ns-a', 'pod-a', 'web']);
    assert.equal(m.timestamp, 5);
  }
  const by = (name: string) => metrics.filter((m) => m.name === name);
  assert.deepEqual(
    by('container_cpu_usage_seconds_total').map((m) => [m.value!.value, m.label_values![5]]),
    [[3, 'total']],
  );
  assert.equal(by('container_cpu_cfs_throttled_seconds_total')[0]!.value!.value, 2);
  assert.deepEqual(
    by('container_fs_reads_bytes_total').map((m) => [m.value!.value, m.label_values![5]]),
    [[4096, '/dev/sda']],
  );
  assert.equal(by('container_memory_failures_total').length, 4);
  assert.equal(by('container_threads_max')[0]!.value!.value, 0, 'no pids limit reads 0');
  assert.equal(by('container_pressure_cpu_waiting_seconds_total')[0]!.value!.value, 2);
  assert.equal(by('container_pressure_io_waiting_seconds_total').length, 0, 'absent pressure files give no sample');
  assert.equal(by('container_spec_memory_reservation_limit_bytes')[0]!.value!.value, 0);
  assert.deepEqual(
    by('container_ulimits_soft').map((m) => [m.value!.value, m.label_values![5]]),
    [[1024, 'max_open_files']],
  );

  const net = podMetrics(pod, { interfaces: parseNetDevCounters(NET_DEV).filter((i) => i.name !== 'lo') }, 5);
  assert.deepEqual(net.find((m) => m.name === 'container_network_receive_packets_total')!.label_values, ['p1', '', 'ns-a', 'pod-a', 'POD', 'eth0']);
  assert.equal(net.find((m) => m.name === 'container_network_transmit_packets_dropped_total')!.value!.value, 6);
  for (const m of net) assert.equal(m.label_values!.length, descs.get(m.name!)!.length, m.name);
});

test('a container without a cgroup reports only what does not need one', () => {
  const record: any = { id: 'c1', imageRef: 'img', config: { metadata: { name: 'web' } }, pid: 0 };
  const metrics = containerMetrics(record, undefined, { deviceNames: new Map(), startedAt: 1, now: 2 }, 5);
  assert.deepEqual(metrics.map((m) => m.name).sort(), ['container_last_seen', 'container_start_time_seconds']);
  assert.deepEqual(metrics[0]!.label_values, ['c1', 'img', '', '', 'web']);
});

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    2000      20    3    4    0     0          0         0     4000      40    5    6    0     0       0          0
`;
