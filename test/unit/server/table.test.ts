// The handler table names exactly the RPCs of the CRI proto the server loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { handlerTable, loadServices } from '../../../src/server/server.ts';

test('the handler table lists every RPC of the loaded proto, and nothing else', () => {
  const services = loadServices();
  const rpcs = [...Object.keys(services.runtime), ...Object.keys(services.image)].sort();
  assert.deepEqual([...handlerTable().keys()].sort(), rpcs);
});
