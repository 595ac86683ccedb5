// Cgroup naming and resource files, without touching the system.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkResources,
  cgroupFsPath,
  containerCgroupsPath,
  expandSlice,
  hierarchies,
  hugePageSizes,
  hugepageSizeName,
  hugetlbControllerAvailable,
  isCgroupFileName,
  podCgroupPath,
  podResources,
  resourceFiles,
} from '../../../src/cgroups/cgroups.ts';

test('slices expand into their parents as systemd does', () => {
  assert.equal(expandSlice('kubepods.slice'), '/kubepods.slice');
  assert.equal(expandSlice('kubepods-burstable-pod1234.slice'), '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice');
  assert.equal(expandSlice('-.slice'), '/');
  for (const bad of ['kubepods', 'a--b.slice', '-a.slice', 'a-.slice', 'a/b.slice', '.slice']) assert.throws(() => expandSlice(bad), bad);
});

test('pod cgroup names for each driver', () => {
  assert.equal(podCgroupPath('', 'abc', 'cgroupfs', '/tscri'), '/tscri/pod-abc');
  assert.equal(podCgroupPath('', 'abc', 'cgroupfs', '/tscri/'), '/tscri/pod-abc');
  assert.equal(podCgroupPath('/kubepods/burstable/pod123', 'abc', 'cgroupfs', '/tscri'), '/kubepods/burstable/pod123');
  assert.throws(() => podCgroupPath('/kubepods/../../etc', 'abc', 'cgroupfs', '/tscri'), /invalid cgroup path/);
  assert.throws(() => podCgroupPath('relative', 'abc', 'cgroupfs', '/tscri'), /invalid cgroup path/);
  assert.throws(() => podCgroupPath('kubepods-pod1.slice', 'abc', 'cgroupfs', '/tscri'), /cgroup_driver/);
  assert.equal(podCgroupPath('kubepods-besteffort-pod1.slice', 'abc', 'systemd', '/tscri'), 'kubepods-besteffort-pod1.slice');
  assert.equal(podCgroupPath('', 'abc', 'systemd', '/tscri'), 'tscri-podabc.slice');
  assert.equal(podCgroupPath('', 'abc', 'systemd', 'machine.slice'), 'machine-podabc.slice');
  assert.throws(() => podCgroupPath('/kubepods/pod1', 'abc', 'systemd', '/tscri'), /slice/);
  // The root cgroup is no pod's: removing the pod could never succeed.
  for (const root of ['/', '//', '///']) assert.throws(() => podCgroupPath(root, 'abc', 'cgroupfs', '/tscri'), /root cgroup/, root);
  assert.throws(() => podCgroupPath('-.slice', 'abc', 'systemd', '/tscri'), /root cgroup/);
  assert.equal(podCgroupPath('/kubepods//burstable/pod1/', 'abc', 'cgroupfs', '/tscri'), '/kubepods/burstable/pod1');
});

test('container cgroupsPath for the OCI spec and its filesystem path', () => {
  assert.equal(containerCgroupsPath({ cgroupParent: '/tscri/pod-abc' }, 'c1', 'cgroupfs'), '/tscri/pod-abc/ctr-c1');
  assert.equal(containerCgroupsPath({ cgroupParent: 'kubepods-pod1.slice' }, 'c1', 'systemd'), 'kubepods-pod1.slice:tscri:c1');
  assert.equal(cgroupFsPath('kubepods-pod1.slice:tscri:c1'), '/kubepods.slice/kubepods-pod1.slice/tscri-c1.scope');
  assert.equal(cgroupFsPath('kubepods-pod1.slice'), '/kubepods.slice/kubepods-pod1.slice');
  assert.equal(cgroupFsPath('/tscri/pod-abc'), '/tscri/pod-abc');
  assert.throws(() => cgroupFsPath('/a/../b'));
});

test('resource files for cgroup v1 and v2', () => {
  const r = {
    cpu_shares: 1024,
    cpu_period: 100000,
    cpu_quota: 50000,
    memory_limit_in_bytes: 1 << 28,
    cpuset_cpus: '0-1',
    cpuset_mems: '0',
    hugepage_limits: [{ page_size: '2MB', limit: 1 << 21 }],
    unified: { 'memory.high': '1000000' },
    memory_swap_limit_in_bytes: 1 << 29,
  };
  assert.deepEqual(resourceFiles(r, 'v1'), [
    ['cpu.shares', '1024'],
    ['cpu.cfs_period_us', '100000'],
    ['cpu.cfs_quota_us', '50000'],
    ['memory.limit_in_bytes', String(1 << 28)],
    ['memory.memsw.limit_in_bytes', String(1 << 29)],
    ['cpuset.cpus', '0-1'],
    ['cpuset.mems', '0'],
    ['hugetlb.2MB.limit_in_bytes', String(1 << 21)],
  ]);
  assert.deepEqual(resourceFiles(r, 'v2'), [
    ['cpu.weight', '39'],
    ['cpu.max', '50000 100000'],
    ['memory.max', String(1 << 28)],
    ['memory.swap.max', String(1 << 28)],
    ['cpuset.cpus', '0-1'],
    ['cpuset.mems', '0'],
    ['hugetlb.2MB.max', String(1 << 21)],
    ['memory.high', '1000000'],
  ]);
  assert.deepEqual(resourceFiles({ cpu_quota: -1, cpu_period: 100000 }, 'v2'), [['cpu.max', 'max 100000']]);
  assert.deepEqual(resourceFiles({}, 'v1'), []);
  assert.throws(() => resourceFiles({ unified: { '../x': '1' } }, 'v2'), /invalid unified/);
});

test('a pod total adds the sandbox overhead to its containers', () => {
  const sum = podResources(
    { cpu_shares: 512, cpu_period: 100000, cpu_quota: 50000, memory_limit_in_bytes: 100 } as any,
    { cpu_shares: 10, cpu_period: 50000, cpu_quota: 5000, memory_limit_in_bytes: 20 } as any,
  );
  assert.equal(sum.cpu_shares, 522);
  assert.equal(sum.cpu_quota, 60000);
  assert.equal(sum.cpu_period, 100000);
  assert.equal(sum.memory_limit_in_bytes, 120);
  // No container memory limit means none for the pod, whatever the overhead.
  assert.equal(podResources({ memory_limit_in_bytes: 0 } as any, { memory_limit_in_bytes: 20 } as any).memory_limit_in_bytes, 0);
  assert.deepEqual(podResources(null, null), {});
  // kubelet's sandbox resources carry memory.oom.group on cgroup v2: it belongs on containers only.
  assert.deepEqual(podResources({ memory_limit_in_bytes: 100, unified: { 'memory.oom.group': '1' } } as any, null), { memory_limit_in_bytes: 100 });
});

test('cgroup hierarchies are read from mountinfo', () => {
  const mountinfo = [
    '30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu',
    '31 25 0:27 / /sys/fs/cgroup/systemd rw,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd',
    '32 25 0:28 / /sys/fs/cgroup/unified rw,relatime shared:11 - cgroup2 cgroup2 rw',
    '33 25 0:29 / /proc rw - proc proc rw',
  ].join('\n');
  assert.deepEqual(hierarchies(mountinfo), [
    { mount: '/sys/fs/cgroup/cpu', version: 'v1', controllers: ['cpu'] },
    { mount: '/sys/fs/cgroup/systemd', version: 'v1', controllers: ['name=systemd'] },
    { mount: '/sys/fs/cgroup/unified', version: 'v2', controllers: [] },
  ]);
});

test('the hugetlb controller is there for v1 hierarchies, and at the v2 root only on v2 hosts', () => {
  const v1 = (controllers: string[]) => ({ mount: `/sys/fs/cgroup/${controllers[0]}`, version: 'v1' as const, controllers });
  const unifiedHybrid = { mount: '/sys/fs/cgroup/unified', version: 'v2' as const, controllers: [] };
  const unifiedRoot = { mount: '/sys/fs/cgroup', version: 'v2' as const, controllers: [] };
  // Hybrid with hugetlb only in the unified hierarchy: runc cannot use it.
  assert.equal(hugetlbControllerAvailable([v1(['memory']), v1(['cpu']), unifiedHybrid], 'hugetlb'), false);
  assert.equal(hugetlbControllerAvailable([v1(['memory']), v1(['hugetlb']), unifiedHybrid]), true);
  assert.equal(hugetlbControllerAvailable([unifiedRoot], 'cpuset cpu io memory hugetlb pids'), true);
  assert.equal(hugetlbControllerAvailable([unifiedRoot], 'cpuset cpu io memory pids'), false);
  assert.equal(hugetlbControllerAvailable([]), false);
});

test('huge page sizes are named as runc and kubelet name them', () => {
  assert.deepEqual(hugePageSizes(['hugepages-2048kB', 'hugepages-1048576kB', 'hugepages-64kB', 'other']), ['2MB', '1GB', '64KB']);
  assert.deepEqual(hugePageSizes([]), []);
});

test('hugepage sizes and cgroup file names: only plain names reach the cgroup directory', () => {
  assert.equal(hugepageSizeName('2MB'), '2MB');
  assert.equal(hugepageSizeName('2Mi'), '2MB');
  assert.equal(hugepageSizeName('1g'), '1GB');
  assert.equal(hugepageSizeName('64KiB'), '64KB');
  for (const bad of ['', '2', 'MB', '../../etc/passwd', '2MB/../../x', '/../../tmp/x', '2MB\0', '0MB', '2TB', '1'.repeat(10) + 'MB']) {
    assert.throws(() => hugepageSizeName(bad), /invalid hugepage size/, bad);
    assert.throws(() => resourceFiles({ hugepage_limits: [{ page_size: bad, limit: 1 }] }, 'v1'), /invalid hugepage size/, bad);
    assert.throws(() => checkResources({ hugepage_limits: [{ page_size: bad, limit: 1 }] }), /invalid hugepage size/, bad);
  }
  for (const good of ['memory.max', 'hugetlb.2MB.limit_in_bytes', 'memory.memsw.limit_in_bytes', 'io.bfq.weight', 'cpu.cfs_quota_us'])
    assert.ok(isCgroupFileName(good), good);
  for (const bad of ['', 'memory', '../memory.max', 'a/b.c', '.memory.max', 'memory..max', 'memory.max/', 'memory.max\0', 'Memory.max'])
    assert.ok(!isCgroupFileName(bad), bad);
  assert.throws(() => checkResources({ unified: { 'memory..max': '1' } }), /invalid unified/);
});
