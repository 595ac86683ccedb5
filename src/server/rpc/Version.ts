// Version: runtime name, version and the CRI API version served.
import type { VersionRequest__Output } from '../../generated/runtime/v1/VersionRequest.ts';
import type { VersionResponse } from '../../generated/runtime/v1/VersionResponse.ts';
import { unary } from '../handler.ts';

export default unary<VersionRequest__Output, VersionResponse>(async (ctx) => ({
  version: '0.1.0',
  runtime_name: 'tscri',
  runtime_version: ctx.version,
  runtime_api_version: 'v1',
}));
