// node:http's createServer, taken with process.getBuiltinModule rather than an
// ESM import: importing node:http makes Node build the module namespace's lazy
// fetch/WebSocket exports, which loads its bundled undici (1.5 MiB or more of
// an idle daemon's resident memory). test/unit/architecture/startup-modules
// checks that the daemon does not load it.
export const { createServer } = process.getBuiltinModule('node:http');
