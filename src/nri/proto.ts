// Protobuf codecs for NRI's messages and ttrpc's envelope, built by protobufjs
// from proto/nri.proto and proto/ttrpc.proto. Decoded objects have the shape
// of the generated *__Output types (defaults filled, 64-bit integers as
// numbers, enums as names); encoding accepts the generated input types.
import protobuf from 'protobufjs';
import { fileURLToPath } from 'node:url';

const root = new protobuf.Root();
root.loadSync([fileURLToPath(new URL('../../proto/nri.proto', import.meta.url)), fileURLToPath(new URL('../../proto/ttrpc.proto', import.meta.url))], {
  keepCase: true,
});
root.resolveAll();

const DECODE_OPTIONS: protobuf.IConversionOptions = {
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  objects: true,
  oneofs: true,
};

export class DecodeError extends Error {}

export interface Codec<In, Out> {
  encode(value: In): Buffer;
  /** Throws DecodeError for bytes that are not this message. */
  decode(bytes: Uint8Array): Out;
}

export function codec<In, Out>(name: string): Codec<In, Out> {
  const type = root.lookupType(name);
  return {
    encode(value: In): Buffer {
      const bytes = type.encode(type.fromObject(value as Record<string, unknown>)).finish();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    decode(bytes: Uint8Array): Out {
      try {
        return type.toObject(type.decode(bytes), DECODE_OPTIONS) as Out;
      } catch (err) {
        // Malformed input, including absurd nesting of unknown groups (RangeError).
        throw new DecodeError(`malformed ${type.name} message: ${(err as Error).message}`);
      }
    },
  };
}

/** An NRI message codec: name is the message name inside nri.pkg.api.v1alpha1. */
export function nriCodec<In, Out>(name: string): Codec<In, Out> {
  return codec<In, Out>(`nri.pkg.api.v1alpha1.${name}`);
}
