/**
 * The value commands: "Scan for NaN/Inf", "Compare Checkpoints", "Convert to safetensors…" and a
 * tree module's "Show Statistics". Each is a small factory (as in commands.ts) that asks which
 * file(s), sends one long request with a cancellable notification that shows the server's
 * progress, and hands the answer to the page, the tree or the comparison page. What to show is
 * the server's; the wording is in valueText.ts.
 */
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { WorkDoneProgress, type CancellationToken, type WorkDoneProgressParams } from 'vscode-languageclient';
import type { CommandFactory } from './commands';
import type { Ctx } from './ctx';
import { DiffPages } from './diffPage';
import { checkpointViewType } from './editor';
import * as protocol from './protocol';
import { CheckpointNode } from './tree';
import { compareTargets, convertMessage, safetensorsName, scanMessage } from './valueText';

const CHECKPOINT_GLOB = '**/*.{pth,pt,ckpt,bin,safetensors,tar}';
const CHECKPOINT_FILTERS = { 'PyTorch checkpoints': ['pth', 'pt', 'ckpt', 'bin', 'tar', 'safetensors'], 'All files': ['*'] };

class Stopped extends Error {}

/**
 * `send(token, workDoneToken)` with a cancellable notification titled `title` that shows the
 * server's `$/progress` reports; cancelling it cancels the request (Stopped is thrown).
 */
async function withServerProgress<R>(ctx: Ctx, title: string, send: (token: CancellationToken, workDoneToken: string) => Promise<R>): Promise<R> {
  const client = await ctx.start();
  const workDoneToken = randomUUID();
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, token) => {
    let shown = 0;
    const subscription = client?.onProgress(WorkDoneProgress.type, workDoneToken, (value) => {
      if (value.kind === 'report') {
        const percentage = value.percentage ?? shown;
        progress.report({ message: value.message, increment: Math.max(0, percentage - shown) });
        shown = Math.max(shown, percentage);
      }
    });
    try {
      return await send(token, workDoneToken);
    } catch (error) {
      if (token.isCancellationRequested) {
        throw new Stopped(`${title}: stopped`);
      }
      throw error;
    } finally {
      subscription?.dispose();
    }
  });
}

/** A checkpoint of the workspace (or one browsed to), other than `exclude`. */
async function pickCheckpoint(title: string, exclude?: vscode.Uri): Promise<vscode.Uri | undefined> {
  const browse = { label: '$(folder-opened) Browse…', uri: undefined as vscode.Uri | undefined };
  const found = await vscode.workspace.findFiles(CHECKPOINT_GLOB, '**/{node_modules,.git,.venv}/**', 500);
  const items = found.filter((uri) => uri.fsPath !== exclude?.fsPath).sort((x, y) => x.fsPath.localeCompare(y.fsPath))
    .map((uri) => ({ label: path.basename(uri.fsPath), description: vscode.workspace.asRelativePath(path.dirname(uri.fsPath)), uri }));
  const picked = await vscode.window.showQuickPick([...items, browse], { title, placeHolder: 'A checkpoint file', matchOnDescription: true });
  if (!picked) {
    return undefined;
  }
  if (picked.uri) {
    return picked.uri;
  }
  return (await vscode.window.showOpenDialog({ canSelectMany: false, filters: CHECKPOINT_FILTERS, title, openLabel: 'Choose' }))?.[0];
}

function fileOf(target: unknown): string | undefined {
  if (target instanceof vscode.Uri) {
    return target.fsPath;
  }
  return target instanceof CheckpointNode ? target.file : undefined;
}

async function show(level: 'info' | 'warning' | 'error', text: string, ...actions: string[]): Promise<string | undefined> {
  const message = `pthscope: ${text}`;
  if (level === 'error') {
    return vscode.window.showErrorMessage(message, ...actions);
  }
  return level === 'warning' ? vscode.window.showWarningMessage(message, ...actions) : vscode.window.showInformationMessage(message, ...actions);
}

const scanForNanInf: CommandFactory = {
  needsServer: true,
  create: ({ ctx, tree, pages }) => async (target?: unknown) => {
    const file = fileOf(target) ?? tree.current?.file ?? (await pickCheckpoint('Scan for NaN/Inf'))?.fsPath;
    if (!file) {
      return;
    }
    let result: protocol.ScanResult | undefined;
    try {
      result = await withServerProgress(ctx, `pthscope: scanning ${path.basename(file)} for NaN/Inf`, (token, workDoneToken) => {
        const params: protocol.ScanParams & WorkDoneProgressParams = { file, workDoneToken };
        return ctx.request(protocol.scan, params, token);
      });
    } catch (error) {
      if (!(error instanceof Stopped)) {
        throw error;
      }
    }
    // The server keeps the scan (a stopped one too) and marks what it sends about the file.
    const reopened = await ctx.request(protocol.open, { file });
    if (tree.current?.file === file) {
      tree.show(reopened);
    }
    pages.scanned(file, reopened, result ?? null);
    if (!result) {
      void vscode.window.setStatusBarMessage(`pthscope: scan of ${path.basename(file)} stopped`, 4000);
      return;
    }
    const message = scanMessage(result);
    const first = result.bad.length > 0 ? result.bad[0] : undefined;
    if (first && (await show(message.level, message.text, 'Show in Page'))) {
      await pages.revealInPage(file, { key: first.key, path: first.path, tensor: true });
    } else if (!first) {
      await show(message.level, message.text);
    }
  },
};

const CONTAINER_ROLES_ASK = ['optimizer_state', 'other'] as const;

const convertToSafetensors: CommandFactory = {
  needsServer: true,
  create: ({ ctx, tree }) => async (target?: unknown) => {
    const source = fileOf(target) ?? tree.current?.file ?? (await pickCheckpoint('Convert to safetensors'))?.fsPath;
    if (!source) {
      return;
    }
    let everything = false;
    const roles = tree.current?.file === source ? tree.current.summary.roles : undefined;
    if (roles && roles.parameter.tensors + roles.buffer.tensors > 0 && CONTAINER_ROLES_ASK.some((role) => roles[role].tensors > 0)) {
      const picked = await vscode.window.showQuickPick([
        { label: 'The model\'s parameters and buffers', detail: 'what model.state_dict() holds, named as the model names them', all: false },
        { label: 'Every tensor', detail: 'optimizer state and other tensors too, named by their full keys', all: true },
      ], { title: `Convert ${path.basename(source)} to safetensors` });
      if (!picked) {
        return;
      }
      everything = picked.all;
    }
    const out = await vscode.window.showSaveDialog({
      defaultUri: vscode.Uri.file(path.join(path.dirname(source), safetensorsName(source))),
      filters: { safetensors: ['safetensors'] }, saveLabel: 'Convert', title: `Convert ${path.basename(source)} to safetensors`,
    });
    if (!out) {
      return;
    }
    if (out.fsPath === source) {
      void vscode.window.showErrorMessage('pthscope: choose another file than the one being converted.');
      return;
    }
    let result: protocol.ConvertResult;
    try {
      result = await withServerProgress(ctx, `pthscope: writing ${path.basename(out.fsPath)}`, (token, workDoneToken) => {
        const params: protocol.ConvertParams & WorkDoneProgressParams = { file: source, out: out.fsPath, all: everything, workDoneToken };
        return ctx.request(protocol.convert, params, token);
      });
    } catch (error) {
      if (error instanceof Stopped) {
        void vscode.window.setStatusBarMessage('pthscope: conversion stopped; nothing written', 4000);
        return;
      }
      throw error;
    }
    if (!result.written) {
      void vscode.window.showErrorMessage(`pthscope: ${result.error ?? 'the conversion failed'}`);
      return;
    }
    if ((await vscode.window.showInformationMessage(`pthscope: ${convertMessage(result.written)}`, 'Open')) === 'Open') {
      await vscode.commands.executeCommand('vscode.openWith', out, checkpointViewType(out));
    }
  },
};

const compareCheckpoints: CommandFactory = {
  needsServer: true,
  create: ({ ctx, tree }) => {
    const diffs = new DiffPages(ctx);
    return async (clicked?: unknown, selected?: unknown) => {
      const uris = Array.isArray(selected) ? selected.filter((u): u is vscode.Uri => u instanceof vscode.Uri) : undefined;
      const active = tree.current ? vscode.Uri.file(tree.current.file) : undefined;
      const targets = compareTargets(clicked instanceof vscode.Uri ? clicked : undefined, uris, active);
      const a = targets.a ?? await pickCheckpoint('Compare Checkpoints: choose A');
      if (!a) {
        return;
      }
      const b = targets.b ?? await pickCheckpoint(`Compare ${path.basename(a.fsPath)} with…`, a);
      if (b) {
        diffs.open(a, b);
      }
    };
  },
};

/** Statistics of everything under a tree node, shown in the checkpoint page's values panel. */
const moduleStatistics: CommandFactory = {
  needsServer: true,
  create: ({ ctx, pages }) => async (node?: unknown) => {
    if (!(node instanceof CheckpointNode)) {
      return;
    }
    const name = node.summary.key || path.basename(node.file);
    let result: protocol.ModuleStatsResult;
    try {
      result = await withServerProgress(ctx, `pthscope: statistics of ${name}`, (token, workDoneToken) => {
        const params: protocol.ModuleStatsParams & WorkDoneProgressParams = { file: node.file, path: node.summary.path, workDoneToken };
        return ctx.request(protocol.moduleStats, params, token);
      });
    } catch (error) {
      if (error instanceof Stopped) {
        return;
      }
      throw error;
    }
    await pages.showModuleStats(node.file, result);
  },
};

export const VALUE_COMMANDS: Record<string, CommandFactory> = {
  'pthscope.scan': scanForNanInf,
  'pthscope.compareCheckpoints': compareCheckpoints,
  'pthscope.convertToSafetensors': convertToSafetensors,
  'pthscope.moduleStats': moduleStatistics,
};
