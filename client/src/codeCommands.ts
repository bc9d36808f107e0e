/**
 * The commands the server's code actions and the tree's "Insert requires_grad Code" run in a
 * Python editor. The server decides everything (which modules, which actions, the code, where it
 * goes); these only show its choices and insert its text:
 * - `pthscope.chooseModules`: "Freeze / unfreeze modules of `net`…": a quick pick of the modules
 *   `pthscope.listModules` names, then of its actions; `pthscope.insertRequiresGradCode` writes it.
 * - `pthscope.insertSnippet`: a save/load snippet from `pthscope.snippetEdit`, inserted with its
 *   tab stops (LSP 3.17 workspace edits have none).
 * Freezing after the optimizer was built is asked about first: put it before the optimizer, or here.
 */
import * as vscode from 'vscode';
import * as protocol from './protocol';
import type { InsertRequiresGradCodeArgs, InsertRequiresGradCodeResult, ListModulesResult, SnippetEditResult } from './protocol';

interface AtLine {
  uri: string;
  line: number;
  version?: number | null;
}

function isAtLine(value: unknown): value is AtLine {
  if (typeof value !== 'object' || value === null) {
    return false;
  }
  const args = value as Partial<AtLine>;
  return typeof args.uri === 'string' && typeof args.line === 'number';
}

function isSnippetArgs(value: unknown): value is protocol.SnippetEditArgs {
  const args = value as Partial<protocol.SnippetEditArgs> | undefined;
  return isAtLine(value) && typeof args?.action === 'string' && typeof args.var === 'string';
}

/** Runs the server's freezing command; asks first when the code would follow the optimizer. */
export async function insertRequiresGradCode(args: InsertRequiresGradCodeArgs): Promise<void> {
  const run = (placement: protocol.Placement): Thenable<InsertRequiresGradCodeResult | undefined> =>
    vscode.commands.executeCommand<InsertRequiresGradCodeResult | undefined>(protocol.INSERT_REQUIRES_GRAD_CODE, { ...args, placement });
  let result = await run('check');
  if (result && !result.applied && result.optimizer_line !== null) {
    const before = `Put It Before Line ${result.optimizer_line + 1}`;
    const here = 'Insert Here Anyway';
    const choice = await vscode.window.showWarningMessage(`pthscope: ${result.message}`, before, here);
    if (!choice) {
      return;
    }
    result = await run(choice === before ? 'beforeOptimizer' : 'here');
  }
  if (result && !result.applied) {
    void vscode.window.showInformationMessage(`pthscope: ${result.message}`);
  }
}

export async function chooseModules(args: unknown): Promise<void> {
  if (!isAtLine(args)) {
    return;
  }
  const listed = await vscode.commands.executeCommand<ListModulesResult | undefined>(protocol.LIST_MODULES, args);
  if (!listed?.var || listed.modules.length === 0) {
    void vscode.window.showInformationMessage(`pthscope: ${listed?.message ?? 'no modules to offer here'}`);
    return;
  }
  const modules = await vscode.window.showQuickPick(
    listed.modules.map((m) => ({ label: m.label, description: m.description, key: m.key })),
    { title: listed.title, placeHolder: 'Pick modules (Space), then Enter', canPickMany: true, matchOnDescription: true },
  );
  if (!modules) {
    return;
  }
  const action = await vscode.window.showQuickPick(
    listed.actions.map((a) => ({ label: a.label, detail: a.detail, action: a.action })),
    { title: `${listed.title}: ${modules.map((m) => m.key).join(', ') || 'no module picked'}` },
  );
  if (action) {
    await insertRequiresGradCode({ uri: args.uri, line: args.line, action: action.action, modules: modules.map((m) => m.key) });
  }
}

export async function insertSnippet(args: unknown): Promise<void> {
  if (!isSnippetArgs(args)) {
    return;
  }
  const found = await vscode.commands.executeCommand<SnippetEditResult | undefined>(protocol.SNIPPET_EDIT, args);
  if (!found?.snippet) {
    void vscode.window.showInformationMessage(`pthscope: ${found?.message ?? 'nothing to insert'}`);
    return;
  }
  const uri = vscode.Uri.parse(args.uri);
  const editor = vscode.window.visibleTextEditors.find((e) => e.document.uri.toString() === uri.toString()) ?? await vscode.window.showTextDocument(uri);
  if (found.version !== null && editor.document.version !== found.version) {
    void vscode.window.showInformationMessage('pthscope: the file changed meanwhile; ask for the action again.');
    return;
  }
  const range = new vscode.Range(found.line, found.character, found.end_line, found.end_character);
  await editor.insertSnippet(new vscode.SnippetString(found.snippet), range);
}
