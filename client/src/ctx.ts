/**
 * The extension's context: owns the language client, the log channel, the settings and two
 * cleanup lists (one for the extension's lifetime, one for the running client). Everything
 * that talks to the server goes through `request`, which waits for a starting server and
 * fails with ServerNotRunning when there is none. It restarts the server when the interpreter
 * may change: its setting, the Python extension's environment, workspace trust being granted
 * (the workspace's settings then apply), the workspace folders (kept off the server's path).
 * Each interpreter is probed once a session (while its executable is unchanged). In a remote
 * window (code-server, SSH, WSL, a container) a `pthscope.interpreter` from the user's settings
 * may name a Python of another machine: then the next source is used and the user is told once,
 * with the fix.
 */
import * as vscode from 'vscode';
import type { CancellationToken, RequestType } from 'vscode-languageclient';
import type { LanguageClient } from 'vscode-languageclient/node';
import { createLanguageClient } from './client';
import { Config } from './config';
import { candidateTiers, chooseInterpreter, describeSource, formatVersion, memoizedProbe, type ProbeRunner, type ProbeStore, runProbe } from './interpreter';
import { serverCodeDir, serverLaunch } from './launch';
import { StartupTimeline } from './startupTimeline';
import { activePythonFromExtension, isPythonExtensionActive, isPythonExtensionInstalled, onDidChangePythonEnvironment } from './pythonExtension';
import * as protocol from './protocol';
import { type Notice, remoteWindowName, settingElsewhereNotice } from './remote';
import type { ServerStatus } from './serverStatus';
import { type RestrictedModeNote, restrictedModeNote, type RunningInterpreter } from './trust';

/** Probe answers kept across sessions (a few short strings; stale entries name executables that changed). */
function globalProbeStore(state: vscode.Memento): ProbeStore {
  const KEY = 'pthscope.probes';
  const MAX_KEPT = 16;
  return {
    get: (key) => state.get<Record<string, string>>(KEY)?.[key],
    set: (key, stdout) => {
      const kept = Object.entries(state.get<Record<string, string>>(KEY) ?? {}).filter(([k]) => k !== key).slice(-(MAX_KEPT - 1));
      void state.update(KEY, Object.fromEntries([...kept, [key, stdout]]));
    },
  };
}

export class ServerNotRunning extends Error {
  constructor(reason: string) {
    super(`The pthscope server is not running: ${reason} Run "pthscope: Restart Server" once it is fixed, or see "pthscope: Show Log".`);
  }
}

const RESTART_DEBOUNCE_MS = 300;

export class Ctx implements vscode.Disposable {
  readonly log: vscode.LogOutputChannel;
  readonly config = new Config();
  /** Where the first page's time goes after activation, in the log. */
  readonly startup: StartupTimeline;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly clientDisposables: vscode.Disposable[] = [];
  private client: LanguageClient | undefined;
  private starting: Promise<LanguageClient | undefined> | undefined;
  private notRunningReason = 'it has not been started.';
  private restartTimer: NodeJS.Timeout | undefined;
  private running: RunningInterpreter | undefined;
  private refused: string[] = [];
  private readonly trustChanged = new vscode.EventEmitter<void>();
  /** Fires when what `restrictedModeNote` says may have changed (a restart, trust granted). */
  readonly onDidChangeTrustNote = this.trustChanged.event;
  private readonly serverChanged = new vscode.EventEmitter<'stopping' | 'started'>();
  /** A restart: `stopping` before the old server stops, `started` once a new one was tried (pages read again). */
  readonly onDidChangeServer = this.serverChanged.event;
  private readonly statusChanged = new vscode.EventEmitter<ServerStatus>();
  readonly onDidChangeStatus = this.statusChanged.event;
  private serverStatus: ServerStatus = { state: 'starting' };
  private readonly probe: ProbeRunner;

  constructor(readonly extension: vscode.ExtensionContext) {
    this.log = vscode.window.createOutputChannel('pthscope', { log: true });
    this.startup = new StartupTimeline((line) => { this.log.info(line); });
    this.probe = memoizedProbe(runProbe, undefined, globalProbeStore(extension.globalState));
    this.pushCleanup(this.log, this.trustChanged, this.serverChanged, this.statusChanged);
    this.pushCleanup(
      vscode.workspace.onDidChangeConfiguration((event) => {
        if (this.config.needsServerRestart(event)) {
          this.log.info('Interpreter setting changed: restarting the server.');
          this.scheduleRestart();
        }
      }),
      vscode.workspace.onDidGrantWorkspaceTrust(() => {
        this.log.info('Workspace trusted: restarting the server with the workspace settings.');
        this.trustChanged.fire();
        this.scheduleRestart();
      }),
      vscode.workspace.onDidChangeWorkspaceFolders(() => {
        this.log.info('Workspace folders changed: restarting the server.');
        this.scheduleRestart();
      }),
    );
    void onDidChangePythonEnvironment(() => {
      if (!this.config.interpreter) {
        this.log.info('Python extension environment changed: restarting the server.');
        this.scheduleRestart();
      }
    }).then((subscription) => {
      if (subscription) {
        this.pushCleanup(subscription);
      }
    });
  }

  pushCleanup(...disposables: vscode.Disposable[]): void {
    this.disposables.push(...disposables);
  }

  /** What Restricted Mode changes, for the page; undefined in a trusted workspace. */
  get restrictedModeNote(): RestrictedModeNote | undefined {
    return vscode.workspace.isTrusted ? undefined : restrictedModeNote(this.running, this.refused);
  }

  get status(): ServerStatus {
    return this.serverStatus;
  }

  get isServerRunning(): boolean {
    return this.client?.isRunning() ?? false;
  }

  /**
   * Starts the server once activation has returned: the page that activated the extension is
   * resolved first, and the server (the slowest part of a cold start) starts right after.
   */
  startSoon(): void {
    const timer = setTimeout(() => void this.start(), 0);
    this.pushCleanup({ dispose: () => { clearTimeout(timer); } });
  }

  /** Starts the server (once; concurrent callers share the attempt). */
  start(): Promise<LanguageClient | undefined> {
    this.starting ??= this.startClient();
    return this.starting;
  }

  async restart(): Promise<void> {
    this.serverChanged.fire('stopping');
    await this.stop();
    const client = await this.start();
    this.serverChanged.fire('started');
    if (client) {
      void vscode.window.setStatusBarMessage('pthscope: server restarted', 3000);
    }
  }

  async stop(): Promise<void> {
    const stopping = this.starting;
    this.starting = undefined;
    await stopping;
    const client = this.client;
    this.client = undefined;
    this.notRunningReason = 'it was stopped.';
    vscode.Disposable.from(...this.clientDisposables.splice(0)).dispose();
    this.setStatus({ state: 'stopped', reason: this.notRunningReason });
    if (client) {
      await client.dispose().catch((error: unknown) => {
        this.log.warn(`Stopping the server: ${String(error)}`);
      });
    }
  }

  /** Sends a pthscope request, waiting for a server that is still starting. */
  async request<P, R>(type: RequestType<P, R, void>, params: P, token?: CancellationToken): Promise<R> {
    const client = await this.start();
    if (!client?.isRunning()) {
      throw new ServerNotRunning(this.notRunningReason);
    }
    return token ? client.sendRequest(type, params, token) : client.sendRequest(type, params);
  }

  dispose(): void {
    clearTimeout(this.restartTimer);
    void this.stop();
    vscode.Disposable.from(...this.disposables.splice(0)).dispose();
  }

  private scheduleRestart(): void {
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => void this.restart(), RESTART_DEBOUNCE_MS);
  }

  private setStatus(status: ServerStatus): void {
    this.serverStatus = status;
    this.statusChanged.fire(status);
  }

  private async startClient(): Promise<LanguageClient | undefined> {
    this.setStatus({ state: 'starting' });
    const client = await this.launchClient();
    if (client && this.running) {
      const running = this.running;
      this.setStatus({ state: 'running', running, environment: undefined });
      void client.sendRequest(protocol.environment, {}).then(
        (environment) => { if (this.client === client) { this.setStatus({ state: 'running', running, environment }); } },
        (error: unknown) => { this.log.warn(`pthscope/environment: ${String(error)}`); },
      );
    } else {
      this.setStatus({ state: 'stopped', reason: this.notRunningReason });
    }
    return client;
  }

  private async launchClient(): Promise<LanguageClient | undefined> {
    const trusted = vscode.workspace.isTrusted;
    const folders = (vscode.workspace.workspaceFolders ?? []).map((folder) => folder.uri.fsPath);
    const setting = this.config.interpreter;
    const tiers = candidateTiers({
      setting,
      pythonExtension: setting ? undefined : await this.pythonFromExtension(),
      platform: process.platform,
    });
    const codeDir = serverCodeDir(this.extension.extensionPath);
    const remote = remoteWindowName();
    const fromUserSettings = setting !== '' && this.config.interpreterIsFromUserSettings;
    const choice = await chooseInterpreter(tiers, {
      untrustedFolders: trusted ? [] : folders, cwd: codeDir, env: process.env, platform: process.platform,
      tryNextSourceOnFailure: remote !== undefined && fromUserSettings,
    }, this.probe);
    this.startup.mark('interpreter chosen');
    if (choice.ok && choice.skipped.length > 0 && remote !== undefined) {
      void this.tellOnce(settingElsewhereNotice(setting, remote, choice.skipped, `${choice.executable} (${describeSource(choice.candidate.source)})`));
    }
    this.refused = choice.refused;
    this.running = undefined;
    choice.refused.forEach((line) => { this.log.warn(line); });
    if (!choice.ok) {
      choice.details.forEach((line) => { this.log.error(line); });
      this.notRunningReason = choice.message;
      this.trustChanged.fire();
      void this.showStartError(choice.message);
      return undefined;
    }
    const { candidate, executable, version } = choice;
    const launch = serverLaunch(executable, codeDir, process.env, folders);
    this.log.info(`Starting the server with ${executable} (Python ${formatVersion(version)}, environment ${version.prefix}; from ${describeSource(candidate.source)}${trusted ? '' : '; Restricted Mode'}): ${[launch.command, ...launch.args].join(' ')} in ${launch.cwd}`);
    this.running = { executable, version, source: candidate.source };
    this.trustChanged.fire();
    this.startup.mark('server spawning');
    const client = createLanguageClient(launch, this.log);
    this.clientDisposables.push(
      client.onDidChangeState(() => {
        if (!client.isRunning() && this.client === client) {
          this.notRunningReason = 'it stopped unexpectedly (see the log).';
          this.setStatus({ state: 'stopped', reason: this.notRunningReason });
        }
      }),
    );
    try {
      await client.start();
    } catch (error) {
      const message = `pthscope: the server failed to start with ${candidate.command}: ${error instanceof Error ? error.message : String(error)}`;
      this.log.error(message);
      this.notRunningReason = 'it failed to start (see the log).';
      void this.showStartError(message);
      await client.dispose().catch(() => undefined);
      return undefined;
    }
    this.startup.mark('server started');
    this.client = client;
    return client;
  }

  /**
   * The Python extension's environment. Activating that extension can take seconds: while it
   * is not active yet, the environment it gave last time in this workspace is used at once, and
   * the server restarts if its answer turns out different.
   */
  private async pythonFromExtension(): Promise<string | undefined> {
    const KEY = 'pthscope.pythonExtensionInterpreter';
    const remembered = isPythonExtensionInstalled() && !isPythonExtensionActive() ? this.extension.workspaceState.get<string>(KEY) : undefined;
    const asking = activePythonFromExtension().catch(() => undefined).then(async (found) => {
      await this.extension.workspaceState.update(KEY, found);
      if (remembered !== undefined && found !== remembered) {
        this.log.info(`The Python extension's environment is now ${found ?? 'none'} (was ${remembered}): restarting the server.`);
        this.scheduleRestart();
      }
      return found;
    });
    return remembered ?? asking;
  }

  /** A warning shown once per machine and text (the log has it every time). */
  private async tellOnce(notice: Notice): Promise<void> {
    this.log.warn(notice.message);
    const shownKey = `pthscope.notice.${notice.key}`;
    if (this.extension.globalState.get<boolean>(shownKey)) {
      return;
    }
    await this.extension.globalState.update(shownKey, true);
    if ((await vscode.window.showWarningMessage(notice.message, notice.action)) === notice.action) {
      await vscode.commands.executeCommand(notice.command);
    }
  }

  private async showStartError(message: string): Promise<void> {
    const chooseInterpreterAction = 'Set Interpreter';
    const showLogAction = 'Show Log';
    const picked = await vscode.window.showErrorMessage(message, chooseInterpreterAction, showLogAction);
    if (picked === chooseInterpreterAction) {
      await vscode.commands.executeCommand('workbench.action.openSettings', 'pthscope.interpreter');
    } else if (picked === showLogAction) {
      this.log.show();
    }
  }
}
