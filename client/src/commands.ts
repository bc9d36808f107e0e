/**
 * Every command, as a small factory in one table. A command marked `needsServer` shows a
 * clear message instead of throwing when the server is down.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { chooseModules, insertRequiresGradCode as insertFreezingCode, insertSnippet } from './codeCommands';
import { ServerNotRunning, type Ctx } from './ctx';
import type { CheckpointEditorProvider } from './editor';
import { formatShape } from './format';
import * as protocol from './protocol';
import { openCheckpointPage } from './setPage';
import { CheckpointNode, type CheckpointTree, LoadMoreNode } from './tree';
import { VALUE_COMMANDS } from './valueCommands';

export interface Services {
  ctx: Ctx;
  tree: CheckpointTree;
  pages: CheckpointEditorProvider;
}

type Cmd = (...args: unknown[]) => unknown;

export interface CommandFactory {
  needsServer: boolean;
  create(services: Services): Cmd;
}

const CHECKPOINT_FILTERS = {
  'PyTorch checkpoints': ['pth', 'pt', 'ckpt', 'bin', 'tar', 'safetensors', 'json', 'metadata', 'distcp'],
  'All files': ['*'],
};
const SEARCH_DEBOUNCE_MS = 150;

/** A file, a shard index, a `.metadata` or (from the explorer) a folder: setPage.ts decides where it opens. */
const openCheckpoint: CommandFactory = {
  needsServer: false,
  create: ({ ctx, pages }) => async (uri?: unknown) => {
    // A Uri (explorer menu), an absolute path (the server's document links and hover links), or ask.
    const given = typeof uri === 'string' && path.isAbsolute(uri) ? vscode.Uri.file(uri) : uri;
    const target = given instanceof vscode.Uri ? given : (await vscode.window.showOpenDialog({ canSelectMany: false, filters: CHECKPOINT_FILTERS, openLabel: 'Open Checkpoint' }))?.[0];
    if (target) {
      await openCheckpointPage(pages, ctx.extension.extensionUri, target);
    }
  },
};

/** A folder: a torch.distributed checkpoint, a sharded set, per-rank files (dialogs pick files or folders, not both). */
const openCheckpointFolder: CommandFactory = {
  needsServer: false,
  create: ({ ctx, pages }) => async () => {
    const target = (await vscode.window.showOpenDialog({ canSelectMany: false, canSelectFiles: false, canSelectFolders: true, openLabel: 'Open Checkpoint Folder' }))?.[0];
    if (target) {
      await openCheckpointPage(pages, ctx.extension.extensionUri, target);
    }
  },
};

const restartServer: CommandFactory = {
  needsServer: false,
  create: ({ ctx }) => () => ctx.restart(),
};

const showLog: CommandFactory = {
  needsServer: false,
  create: ({ ctx }) => () => { ctx.log.show(); },
};

const refreshTree: CommandFactory = {
  needsServer: true,
  create: ({ tree }) => () => { tree.refresh(); },
};

const loadMore: CommandFactory = {
  needsServer: true,
  create: ({ tree }) => (node?: unknown) => node instanceof LoadMoreNode ? tree.loadMore(node) : undefined,
};

const copyKey: CommandFactory = {
  needsServer: false,
  create: () => (node?: unknown) => node instanceof CheckpointNode ? vscode.env.clipboard.writeText(node.summary.key) : undefined,
};

const copyShape: CommandFactory = {
  needsServer: false,
  create: () => (node?: unknown) => {
    const shape = node instanceof CheckpointNode ? node.summary.tensor?.shape : undefined;
    return shape ? vscode.env.clipboard.writeText(formatShape(shape)) : undefined;
  },
};

/** Shows a tree node in its page: a tensor's row and values, a container's tensors. A tree click passes `{ preserveFocus: true }`. */
const revealInPage: CommandFactory = {
  needsServer: false,
  create: ({ pages }) => (node?: unknown, options?: unknown) => node instanceof CheckpointNode
    ? pages.revealInPage(node.file, node.summary, { preserveFocus: (options as { preserveFocus?: unknown } | undefined)?.preserveFocus === true })
    : undefined,
};

/**
 * A quick pick over `pthscope/search`; accepting a match reveals it in the tree, loading what it
 * takes, and a tensor in its page too. The server filters: VS Code shows every match as sent
 * (`alwaysShow`) and highlights the query in the key only, not letters of class names.
 */
const find: CommandFactory = {
  needsServer: true,
  create: ({ ctx, tree, pages }) => () => {
    const checkpoint = tree.current;
    if (!checkpoint) {
      return vscode.window.showInformationMessage('pthscope: open a checkpoint first.');
    }
    const pick = vscode.window.createQuickPick<vscode.QuickPickItem & { match?: protocol.NodeSummary }>();
    pick.placeholder = 'Find a module or tensor by key (case-insensitive, * wildcards)';
    pick.matchOnDescription = false;
    pick.matchOnDetail = false;
    let timer: NodeJS.Timeout | undefined;
    let generation = 0;
    const search = async (query: string): Promise<void> => {
      const mine = ++generation;
      if (!query.trim()) {
        pick.items = [];
        pick.title = undefined;
        return;
      }
      pick.busy = true;
      try {
        const result = await ctx.request(protocol.search, { file: checkpoint.file, query, limit: 200 });
        if (mine !== generation) {
          return;
        }
        pick.items = result.matches.map((match) => ({
          alwaysShow: true,
          label: match.key,
          description: match.tensor
            ? `${formatShape(match.tensor.shape)} ${match.tensor.dtype}${match.tensor.grad_state === 'not stored' ? '' : ` · ${match.tensor.grad_state}`}`
            : match.module?.class ?? match.type,
          match,
        }));
        pick.title = `${result.total.toLocaleString('en-US')} matches${result.total > result.matches.length ? ` (first ${result.matches.length} shown)` : ''}`;
      } catch (error) {
        pick.items = [{ label: `$(error) ${error instanceof Error ? error.message : String(error)}` }];
      } finally {
        if (mine === generation) {
          pick.busy = false;
        }
      }
    };
    pick.onDidChangeValue((value) => {
      clearTimeout(timer);
      timer = setTimeout(() => void search(value), SEARCH_DEBOUNCE_MS);
    });
    pick.onDidAccept(async () => {
      const match = pick.selectedItems[0]?.match;
      pick.hide();
      if (match) {
        await vscode.commands.executeCommand('pthscope.tree.focus');
        if (!(await tree.reveal(match.path))) {
          void vscode.window.showInformationMessage(`pthscope: ${match.key} is not in the tree of ${path.basename(checkpoint.file)}.`);
        } else if (match.tensor) {
          await pages.revealInPage(checkpoint.file, match, { preserveFocus: true });
        }
      }
    });
    pick.onDidHide(() => { clearTimeout(timer); pick.dispose(); });
    pick.show();
    return undefined;
  },
};

/** The server's `pthscope.insertRequiresGradCode` actions (docs/protocol.md), as the menu offers them. */
const REQUIRES_GRAD_ACTIONS: { action: protocol.RequiresGradAction; label: string; detail: string }[] = [
  { action: 'freezeAllExcept', label: 'Freeze all parameters except this module', detail: 'train only this module' },
  { action: 'freezeModule', label: 'Freeze this module', detail: 'requires_grad = False for its parameters' },
  { action: 'unfreezeAll', label: 'Unfreeze all parameters', detail: 'requires_grad = True everywhere' },
  { action: 'printParameters', label: 'Print parameters and requires_grad', detail: 'check what will train' },
];

/** Inserts freezing code for a tree module at the cursor of the Python editor (the server writes it). */
const insertRequiresGradCode: CommandFactory = {
  needsServer: true,
  create: () => async (node?: unknown) => {
    if (!(node instanceof CheckpointNode)) {
      return;
    }
    const active = vscode.window.activeTextEditor;
    const editor = active?.document.languageId === 'python' ? active : vscode.window.visibleTextEditors.find((e) => e.document.languageId === 'python');
    if (!editor) {
      void vscode.window.showInformationMessage('pthscope: open the Python file that builds the model and put the cursor where the code should go, then try again.');
      return;
    }
    const picked = await vscode.window.showQuickPick(REQUIRES_GRAD_ACTIONS, { placeHolder: `requires_grad code for ${node.summary.key} in ${path.basename(editor.document.fileName)}` });
    if (!picked) {
      return;
    }
    await insertFreezingCode({ uri: editor.document.uri.toString(), line: editor.selection.active.line, action: picked.action, module: node.summary.key });
  },
};

/** The code actions' client commands (codeCommands.ts). */
const chooseModulesCommand: CommandFactory = { needsServer: true, create: () => chooseModules };
const insertSnippetCommand: CommandFactory = { needsServer: true, create: () => insertSnippet };

const COMMANDS: Record<string, CommandFactory> = {
  'pthscope.insertFreezingCode': insertRequiresGradCode,
  'pthscope.openCheckpoint': openCheckpoint,
  'pthscope.openCheckpointFolder': openCheckpointFolder,
  'pthscope.restartServer': restartServer,
  'pthscope.showLog': showLog,
  'pthscope.refreshTree': refreshTree,
  'pthscope.loadMore': loadMore,
  'pthscope.copyKey': copyKey,
  'pthscope.copyShape': copyShape,
  'pthscope.revealInPage': revealInPage,
  'pthscope.find': find,
  ...VALUE_COMMANDS,
  [protocol.CHOOSE_MODULES]: chooseModulesCommand,
  [protocol.INSERT_SNIPPET]: insertSnippetCommand,
};

export function registerCommands(services: Services): void {
  for (const [id, factory] of Object.entries(COMMANDS)) {
    const run = factory.create(services);
    services.ctx.pushCleanup(
      vscode.commands.registerCommand(id, async (...args: unknown[]) => {
        if (factory.needsServer && !services.ctx.isServerRunning) {
          await services.ctx.start();
        }
        try {
          await run(...args);
        } catch (error) {
          const message = error instanceof ServerNotRunning || error instanceof Error ? error.message : String(error);
          services.ctx.log.error(`${id}: ${message}`);
          void vscode.window.showErrorMessage(`pthscope: ${message}`);
        }
      }),
    );
  }
}
