/**
 * What Restricted Mode changes, in words for the checkpoint page. Pure (no `vscode` import).
 *
 * In an untrusted workspace pthscope still reads checkpoints (reading never executes them), but
 * the workspace cannot choose the Python that runs (user settings, the Python extension or PATH
 * instead, and never an executable or environment inside the workspace), and nothing from the
 * workspace is on that Python's path.
 *
 * Tensor values are not held back: they import torch or numpy from that Python's own
 * environment, which the user installed and already runs whenever they use that Python. The
 * ways a workspace could reach into it are closed: it cannot pick the interpreter, an
 * interpreter or venv inside it is refused, the launcher drops workspace folders that PYTHONPATH
 * or a `.pth` file names, and Restricted Mode itself stops tasks and debugging, which could
 * otherwise have installed something there. Holding torch back would protect nothing more.
 */
import { describeSource, formatVersion, type InterpreterSource, type PythonVersion } from './interpreter';

export interface RunningInterpreter {
  executable: string;
  version: PythonVersion;
  source: InterpreterSource;
}

export interface RestrictedModeNote {
  text: string;
  /** Interpreters Restricted Mode did not run, and why. */
  details: string[];
}

export function restrictedModeNote(running: RunningInterpreter | undefined, refused: readonly string[]): RestrictedModeNote {
  const first = "Restricted Mode: this workspace cannot choose pthscope's Python, and nothing from it runs or is on that Python's path.";
  const text = running
    ? `${first} The server runs ${running.executable} (Python ${formatVersion(running.version)}, from ${describeSource(running.source)}); `
      + 'tensor values use the torch or numpy installed there. Everything else works as usual: reading a checkpoint never executes it. '
      + 'Trust the workspace to let its pthscope.interpreter setting apply.'
    : `${first} No Python outside the workspace could be started; see "pthscope: Show Log".`;
  return { text, details: [...refused] };
}
