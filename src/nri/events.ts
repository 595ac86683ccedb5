// NRI's lifecycle events, the bit mask a plugin subscribes with, and the rules
// for plugin names and indices ("NN-name", invoked in ascending NN order).

export const Event = {
  RunPodSandbox: 1,
  StopPodSandbox: 2,
  RemovePodSandbox: 3,
  CreateContainer: 4,
  PostCreateContainer: 5,
  StartContainer: 6,
  PostStartContainer: 7,
  UpdateContainer: 8,
  PostUpdateContainer: 9,
  StopContainer: 10,
  RemoveContainer: 11,
  UpdatePodSandbox: 12,
  PostUpdatePodSandbox: 13,
  ValidateContainerAdjustment: 14,
} as const;
import { quote } from '../errors.ts';

export type EventName = keyof typeof Event;

/** Event 14 is the last one NRI defines; the mask has one bit per event. */
export const VALID_EVENTS = (1 << 14) - 1;

export function eventBit(event: number): number {
  return 1 << (event - 1);
}

export function subscribed(mask: number, event: number): boolean {
  return (mask & eventBit(event)) !== 0;
}

/** The name NRI's enum gives an event, as StateChangeEvent carries it. */
export const EVENT_ENUM_NAMES: Record<number, string> = {
  1: 'RUN_POD_SANDBOX',
  2: 'STOP_POD_SANDBOX',
  3: 'REMOVE_POD_SANDBOX',
  4: 'CREATE_CONTAINER',
  5: 'POST_CREATE_CONTAINER',
  6: 'START_CONTAINER',
  7: 'POST_START_CONTAINER',
  8: 'UPDATE_CONTAINER',
  9: 'POST_UPDATE_CONTAINER',
  10: 'STOP_CONTAINER',
  11: 'REMOVE_CONTAINER',
  12: 'UPDATE_POD_SANDBOX',
  13: 'POST_UPDATE_POD_SANDBOX',
  14: 'VALIDATE_CONTAINER_ADJUSTMENT',
};

/** Why a plugin index is invalid, or undefined: two decimal digits. */
export function checkPluginIndex(index: string): string | undefined {
  return /^[0-9]{2}$/.test(index) ? undefined : `invalid plugin index ${quote(index)}: must be two digits`;
}

/** Why a plugin name is invalid, or undefined: non-empty, [a-zA-Z0-9_.+-]. */
export function checkPluginName(name: string): string | undefined {
  if (name === '') return 'invalid plugin name: empty';
  if (name.length > 128) return 'invalid plugin name: longer than 128 characters';
  return /^[A-Za-z0-9_.+-]+$/.test(name) ? undefined : `invalid plugin name ${quote(name)}: only letters, digits and _.+- are allowed`;
}

/** Splits a pre-installed plugin's file name "NN-name" into index and name. */
export function parsePluginFileName(file: string): { index: string; name: string } | string {
  const dash = file.indexOf('-');
  if (dash < 0) return `invalid plugin file name ${quote(file)}: NN-name expected`;
  const index = file.slice(0, dash);
  const name = file.slice(dash + 1);
  return checkPluginIndex(index) ?? checkPluginName(name) ?? { index, name };
}
