/**
 * Creates the language client that runs the server on stdio, started as launch.ts says: from a
 * script in the extension's folder, isolated, so nothing from a workspace is on its path.
 */
import * as vscode from 'vscode';
import {
  type ClientCapabilities,
  LanguageClient,
  type LanguageClientOptions,
  RevealOutputChannelOn,
  type ServerOptions,
  type StaticFeature,
} from 'vscode-languageclient/node';
import type { ServerLaunch } from './launch';
import { CLIENT_COMMANDS_CAPABILITY } from './protocol';

const OPEN_CHECKPOINT_COMMAND = 'pthscope.openCheckpoint';

export function createLanguageClient(launch: ServerLaunch, log: vscode.LogOutputChannel): LanguageClient {
  const serverOptions: ServerOptions = {
    command: launch.command,
    // No `transport`: stdio pipes without the `--stdio` argument the client would append.
    args: launch.args,
    options: { env: launch.env, cwd: launch.cwd },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: 'file', language: 'python' }],
    outputChannel: log,
    traceOutputChannel: log,
    // The extension shows its own, actionable messages when the server cannot start.
    revealOutputChannelOn: RevealOutputChannelOn.Never,
    // Hovers are the server's Markdown (file text escaped there); the one link it builds,
    // "Open in pthscope", runs this command, and no other command link is trusted.
    markdown: { isTrusted: { enabledCommands: [OPEN_CHECKPOINT_COMMAND] }, supportHtml: false },
  };
  const client = new LanguageClient('pthscope', 'pthscope', serverOptions, clientOptions);
  client.registerFeature(clientCommandsFeature);
  return client;
}

/** Tells the server this client has the commands its code actions run (commands.ts). */
const clientCommandsFeature: StaticFeature = {
  fillClientCapabilities(capabilities: ClientCapabilities): void {
    capabilities.experimental = { ...(capabilities.experimental as object | undefined), [CLIENT_COMMANDS_CAPABILITY]: true };
  },
  initialize(): void {},
  getState: () => ({ kind: 'static' }),
  clear(): void {},
};
