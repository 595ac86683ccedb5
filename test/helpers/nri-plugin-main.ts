// The test NRI plugin as a program, as tscri starts pre-installed plugins:
// connected through file descriptor 3 (NRI_PLUGIN_SOCKET). Its configuration
// (from plugin_config_path) is JSON: {"adjust": ContainerAdjustment}; it
// answers every CreateContainer with that adjustment.
import { Socket } from 'node:net';
import { TestPlugin } from './nri-plugin.ts';

const plugin: TestPlugin = new TestPlugin({
  name: process.env.NRI_PLUGIN_NAME ?? 'test',
  index: process.env.NRI_PLUGIN_IDX ?? '50',
  handlers: {
    CreateContainer: () => ({ adjust: (JSON.parse(plugin.config || '{}') as { adjust?: object }).adjust ?? {} }),
  },
});
const fd = Number(process.env.NRI_PLUGIN_SOCKET ?? '3');
await plugin.attach(new Socket({ fd, readable: true, writable: true }));
await plugin.closed;
process.exit(0);
