// The Kubernetes Status objects sent on the error channel of exec and attach
// (remotecommand v4 and later), as client-go decodes them.

export function successStatus(): object {
  return { metadata: {}, status: 'Success' };
}

/** The command as the message names it; a huge one only in part. */
function commandText(cmd: string[]): string {
  const text = cmd.join(' ');
  return text.length > 200 ? `${text.slice(0, 200)}… (${text.length} characters)` : text;
}

export function exitCodeStatus(exitCode: number, cmd: string[]): object {
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${commandText(cmd)}], exit code ${exitCode}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
  };
}

export function errorStatus(message: string): object {
  return { metadata: {}, status: 'Failure', message, reason: 'InternalError', code: 500 };
}

/** What goes on the error stream for a protocol version: JSON from v4 on, plain text before. */
export function errorChannelPayload(protocol: string, exitCode: number | undefined, cmd: string[], error?: string): Buffer | undefined {
  const structured = /^v[45]\./.test(protocol);
  if (error !== undefined) return Buffer.from(structured ? JSON.stringify(errorStatus(error)) : error);
  if (!exitCode) return structured ? Buffer.from(JSON.stringify(successStatus())) : undefined;
  return Buffer.from(structured ? JSON.stringify(exitCodeStatus(exitCode, cmd)) : `command terminated with non-zero exit code: exit code ${exitCode}`);
}
