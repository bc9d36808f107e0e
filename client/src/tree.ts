/**
 * The side panel's checkpoint tree: the current checkpoint (the one in the active page) as one
 * root row naming the file, its class and its parameters' totals; under it the file's problems,
 * its contents by role (the root's counts, as the server sends them), then its nodes, expanded
 * lazily one page of children at a time through `pthscope/children`. Revealing a node (Find, the
 * page) asks the server the way to it (`pthscope/reveal`) and loads just the pages on that way.
 * Clicking a tensor shows it in the page. The tree empties when the checkpoint's last page
 * closes. How a node looks is decided in treeModel.ts; this module keeps the loaded nodes and
 * talks to VS Code.
 */
import * as vscode from 'vscode';
import type { Ctx } from './ctx';
import * as protocol from './protocol';
import { countOf, formatBytes, formatExact } from './format';
import type { NodeSummary, OpenResult, PathElement, ProblemJson, RoleTableJson } from './protocol';
import {
  fileLook, nodeId, nodeLook, nodeTooltipMarkdown, pagesUpTo, problemText, remainingChildren, roleRows, roleTooltipMarkdown, tensorTooltipMarkdown,
  visibleText, type RoleRow,
} from './treeModel';

export class CheckpointNode extends vscode.TreeItem {
  constructor(readonly file: string, readonly summary: NodeSummary, readonly parent: CheckpointNode | undefined) {
    const look = nodeLook(summary);
    super(look.label, look.expandable ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None);
    this.id = nodeId(file, summary.path);
    this.description = look.description;
    this.iconPath = new vscode.ThemeIcon(look.icon.id, look.icon.color ? new vscode.ThemeColor(look.icon.color) : undefined);
    this.contextValue = look.contextValue;
    // Tensor tooltips are resolved on hover (resolveTreeItem) to include tied storage.
    this.tooltip = summary.tensor ? undefined : new vscode.MarkdownString(nodeTooltipMarkdown(summary));
    this.accessibilityInformation = { label: `${look.label}, ${look.description}` };
    if (summary.tensor) {
      // A click shows the tensor's row and values in the page, keeping the focus here.
      this.command = { command: 'pthscope.revealInPage', title: 'Show in Page', arguments: [this, { preserveFocus: true }] };
    }
  }
}

/** The root row: the file, its class and its parameters' totals; everything else is under it. */
export class FileNode extends vscode.TreeItem {
  readonly parent = undefined;

  constructor(readonly result: OpenResult) {
    const look = fileLook(result);
    super(look.label, vscode.TreeItemCollapsibleState.Expanded);
    this.id = `${result.file}\u0000file`;
    this.description = look.description;
    this.tooltip = new vscode.MarkdownString(look.tooltip);
    this.iconPath = new vscode.ThemeIcon(result.errors.length > 0 && result.root === null ? 'error' : 'file-binary');
    this.resourceUri = vscode.Uri.file(result.file);
    this.contextValue = 'pthscope.file';
    this.accessibilityInformation = { label: `${look.label}, ${look.description}` };
  }
}

export class LoadMoreNode extends vscode.TreeItem {
  constructor(readonly file: string, readonly parent: CheckpointNode | undefined, remaining: number, pageSize: number) {
    super(`Load ${Math.min(remaining, pageSize).toLocaleString('en-US')} more…`, vscode.TreeItemCollapsibleState.None);
    this.description = `${remaining.toLocaleString('en-US')} not shown`;
    this.iconPath = new vscode.ThemeIcon('ellipsis');
    this.contextValue = 'pthscope.loadMore';
    this.command = { command: 'pthscope.loadMore', title: 'Load More', arguments: [this] };
  }
}

/** "Contents": the file's tensors by role, above its tree. */
export class ContentsNode extends vscode.TreeItem {
  constructor(readonly file: string, result: OpenResult, readonly counts: RoleTableJson, readonly parent: FileNode) {
    super('Contents', vscode.TreeItemCollapsibleState.Expanded);
    this.id = `${file}\u0000contents`;
    const tensors = result.summary.tensors;
    this.description = `${countOf(tensors, 'tensor', 'tensors', formatExact)} · ${formatBytes(result.summary.tensor_bytes)}`;
    this.iconPath = new vscode.ThemeIcon('layers');
    this.contextValue = 'pthscope.contents';
    this.accessibilityInformation = { label: `Contents, ${this.description}` };
  }
}

export class RoleNode extends vscode.TreeItem {
  constructor(row: RoleRow, readonly parent: ContentsNode) {
    super(row.label, vscode.TreeItemCollapsibleState.None);
    this.id = `${parent.file}\u0000role\u0000${row.role}`;
    this.description = row.description;
    this.iconPath = new vscode.ThemeIcon(row.icon);
    this.tooltip = new vscode.MarkdownString(roleTooltipMarkdown(row, parent.counts));
    this.contextValue = `pthscope.role.${row.role}`;
    this.accessibilityInformation = { label: `${row.label}, ${row.description}` };
  }
}

export class ProblemNode extends vscode.TreeItem {
  constructor(problem: ProblemJson, severity: 'error' | 'warning', readonly parent: CheckpointNode | FileNode | undefined) {
    super(problemText(problem), vscode.TreeItemCollapsibleState.None);
    this.description = problem.kind;
    this.iconPath = new vscode.ThemeIcon(severity, new vscode.ThemeColor(severity === 'error' ? 'errorForeground' : 'editorWarning.foreground'));
    this.tooltip = new vscode.MarkdownString().appendText(`${problem.kind}: ${visibleText(problem.message)}${problem.where ? `\nwhere: ${visibleText(problem.where)}` : ''}`);
    this.accessibilityInformation = { label: `${severity}: ${this.description}: ${problemText(problem)}` };
    this.contextValue = `pthscope.${severity}`;
  }
}

export type TreeNode = FileNode | ContentsNode | RoleNode | CheckpointNode | LoadMoreNode | ProblemNode;

interface LoadedChildren {
  nodes: CheckpointNode[];
  total: number;
}

const ROOT_PATH: PathElement[] = [];

export class CheckpointTree implements vscode.TreeDataProvider<TreeNode>, vscode.Disposable {
  private readonly changeEmitter = new vscode.EventEmitter<TreeNode | undefined>();
  readonly onDidChangeTreeData = this.changeEmitter.event;
  readonly view: vscode.TreeView<TreeNode>;
  private checkpoint: OpenResult | undefined;
  private fileNode: FileNode | undefined;
  private readonly loaded = new Map<string, LoadedChildren>();

  constructor(private readonly ctx: Ctx) {
    this.view = vscode.window.createTreeView('pthscope.tree', { treeDataProvider: this, showCollapseAll: true });
  }

  get current(): OpenResult | undefined {
    return this.checkpoint;
  }

  /** Shows `result` (a `pthscope/open` answer); the tree forgets what it loaded for another file. */
  show(result: OpenResult): void {
    if (this.checkpoint === result) {
      return;
    }
    this.checkpoint = result;
    this.fileNode = new FileNode(result);
    // Python files link to the checkpoint on show too (hovers, fixes); nothing to wait for.
    void this.ctx.request(protocol.setActiveCheckpoint, { file: result.file }).catch(() => undefined);
    this.loaded.clear();
    if (result.root) {
      this.loaded.set(nodeId(result.file, ROOT_PATH), { nodes: result.children.map((c) => new CheckpointNode(result.file, c, undefined)), total: result.root.child_count });
    }
    this.view.description = undefined; // the root row names the file
    void vscode.commands.executeCommand('setContext', 'pthscope.hasCheckpoint', true);
    this.changeEmitter.fire(undefined);
  }

  /** Empties the tree (the checkpoint's last page closed): Python files link no checkpoint any more. */
  clear(): void {
    if (!this.checkpoint) {
      return;
    }
    this.checkpoint = undefined;
    this.fileNode = undefined;
    this.loaded.clear();
    void this.ctx.request(protocol.setActiveCheckpoint, { file: null }).catch(() => undefined);
    void vscode.commands.executeCommand('setContext', 'pthscope.hasCheckpoint', false);
    this.changeEmitter.fire(undefined);
  }

  /** Forgets the loaded children and asks the server again. */
  refresh(): void {
    const file = this.checkpoint?.file;
    for (const key of this.loaded.keys()) {
      if (file && key !== nodeId(file, ROOT_PATH)) {
        this.loaded.delete(key);
      }
    }
    this.changeEmitter.fire(undefined);
  }

  getTreeItem(element: TreeNode): TreeNode {
    return element;
  }

  getParent(element: TreeNode): TreeNode | undefined {
    return element instanceof CheckpointNode || element instanceof ProblemNode ? element.parent ?? this.fileNode : element.parent;
  }

  async getChildren(element?: TreeNode): Promise<TreeNode[]> {
    const checkpoint = this.checkpoint;
    if (!checkpoint) {
      return [];
    }
    if (element === undefined) {
      return this.fileNode ? [this.fileNode] : [];
    }
    if (element instanceof FileNode) {
      const problems = [
        ...checkpoint.errors.map((p) => new ProblemNode(p, 'error', element)),
        ...checkpoint.warnings.map((p) => new ProblemNode(p, 'warning', element)),
      ];
      if (!checkpoint.root) {
        return problems;
      }
      const contents = checkpoint.root.counts ? [new ContentsNode(checkpoint.file, checkpoint, checkpoint.root.counts, element)] : [];
      return [...problems, ...contents, ...(await this.childrenWithLoadMore(checkpoint.file, undefined))];
    }
    if (element instanceof ContentsNode) {
      return roleRows(element.counts).map((row) => new RoleNode(row, element));
    }
    if (!(element instanceof CheckpointNode)) {
      return [];
    }
    try {
      return await this.childrenWithLoadMore(element.file, element);
    } catch (error) {
      return [new ProblemNode({ kind: 'request failed', message: error instanceof Error ? error.message : String(error), where: element.summary.key }, 'error', element)];
    }
  }

  async resolveTreeItem(item: vscode.TreeItem, element: TreeNode, token: vscode.CancellationToken): Promise<vscode.TreeItem> {
    if (element instanceof CheckpointNode && element.summary.tensor) {
      const tensor = element.summary.tensor;
      const details = await this.ctx.request(protocol.details, { file: element.file, path: element.summary.path }, token).catch(() => undefined);
      item.tooltip = new vscode.MarkdownString(tensorTooltipMarkdown(details?.node.tensor ?? tensor, details?.tied ?? tensor.shared_with,
        details?.node.scan ?? element.summary.scan));
    }
    return item;
  }

  /** Fetches the next page of `node`'s parent and shows it. */
  async loadMore(node: LoadMoreNode): Promise<void> {
    const loaded = this.loaded.get(nodeId(node.file, node.parent?.summary.path ?? ROOT_PATH));
    if (loaded) {
      await this.fetchPage(node.file, node.parent, loaded, this.ctx.config.treePageSize);
      this.changed(node.parent);
    }
  }

  /**
   * Expands the tree down to the node at `path` and selects it, loading on the way only the pages
   * that hold it (the server says where it is in each parent). `focus`: move the keyboard there.
   */
  async reveal(path: readonly PathElement[], focus = true): Promise<boolean> {
    const file = this.checkpoint?.file;
    if (!file) {
      return false;
    }
    const { steps } = await this.ctx.request(protocol.reveal, { file, path: [...path] });
    let parent: CheckpointNode | undefined;
    for (const step of steps) {
      const loaded = await this.loadedChildren(file, parent);
      if (loaded.nodes.length <= step.index) {
        const pageSize = this.ctx.config.treePageSize;
        while (loaded.nodes.length <= step.index && remainingChildren(loaded.nodes.length, loaded.total) > 0) {
          await this.fetchPage(file, parent, loaded, pagesUpTo(loaded.nodes.length, step.index, pageSize));
        }
        this.changed(parent);
      }
      const node = loaded.nodes[step.index] as CheckpointNode | undefined;
      if (node?.summary.key !== step.node.key || file !== this.checkpoint?.file) {
        return false; // the file changed meanwhile
      }
      parent = node;
    }
    if (!parent) {
      return false;
    }
    await this.view.reveal(parent, { select: true, focus, expand: false });
    return true;
  }

  dispose(): void {
    this.view.dispose();
    this.changeEmitter.dispose();
  }

  /** Tells VS Code that `node`'s children changed (undefined: the root row's). */
  private changed(node: CheckpointNode | undefined): void {
    this.changeEmitter.fire(node ?? this.fileNode);
  }

  private async childrenWithLoadMore(file: string, parent: CheckpointNode | undefined): Promise<TreeNode[]> {
    const loaded = await this.loadedChildren(file, parent);
    const remaining = remainingChildren(loaded.nodes.length, loaded.total);
    return remaining > 0 ? [...loaded.nodes, new LoadMoreNode(file, parent, remaining, this.ctx.config.treePageSize)] : loaded.nodes;
  }

  private async loadedChildren(file: string, parent: CheckpointNode | undefined): Promise<LoadedChildren> {
    const key = nodeId(file, parent?.summary.path ?? ROOT_PATH);
    let loaded = this.loaded.get(key);
    if (!loaded) {
      loaded = { nodes: [], total: Number.POSITIVE_INFINITY };
      await this.fetchPage(file, parent, loaded, this.ctx.config.treePageSize);
      this.loaded.set(key, loaded);
    }
    return loaded;
  }

  private async fetchPage(file: string, parent: CheckpointNode | undefined, loaded: LoadedChildren, limit: number): Promise<void> {
    const page = await this.ctx.request(protocol.children, {
      file,
      path: parent?.summary.path ?? ROOT_PATH,
      offset: loaded.nodes.length,
      limit,
    });
    loaded.nodes.push(...page.children.map((c) => new CheckpointNode(file, c, parent)));
    loaded.total = page.children.length === 0 ? loaded.nodes.length : page.total;
  }
}
