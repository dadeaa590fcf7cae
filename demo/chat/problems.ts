// What a person reads when something fails: a title, what to do, and buttons that do it. Errors from
// the engine are typed (a code that survives the worker), so each gets its own advice; the engine's own
// message stays visible as the detail, since it names the file, the size or the limit involved.
import { type StringKey, t } from './i18n.ts';

export type ProblemAction = 'reloadModel' | 'retry' | 'chooseModel' | 'manageModels' | 'newChat' | 'tryInt8' | 'tryShorter';

export interface Problem {
  title: string;
  advice: string;
  /** The engine's own words (file names, sizes), shown smaller. */
  detail: string;
  actions: ProblemAction[];
  code: string;
}

interface TypedError {
  name?: string;
  code?: string;
  message?: string;
  reason?: string;
}

const view = (title: StringKey, advice: string, detail: string, actions: ProblemAction[], code: string): Problem => ({ title: t(title), advice, detail, actions, code });

/** A load error as the page shows it. */
export function loadProblem(error: unknown): Problem {
  const { code = 'UNKNOWN', message = String(error), reason } = (error ?? {}) as TypedError;
  switch (code) {
    case 'WEBGPU_UNAVAILABLE':
      if (reason === 'no-adapter') return view('noAdapterTitle', t('noAdapter'), message, [], code);
      if (reason === 'no-device') return view('noDeviceTitle', t('noAdapter'), message, ['retry'], code);
      return view('noWebgpuTitle', t('noWebgpu'), message, [], code);
    case 'GPU_OUT_OF_MEMORY':
    case 'GPU_LIMIT':
      return view('outOfMemoryTitle', t('outOfMemory'), message, ['tryInt8', 'tryShorter', 'chooseModel'], code);
    case 'STORAGE_QUOTA':
      return view('storageFullTitle', t('storageFull'), message, ['manageModels', 'retry'], code);
    case 'MODEL_INTEGRITY':
      return view('integrityTitle', t('integrity'), message, ['retry', 'chooseModel'], code);
    case 'MODEL_FILE_MISSING':
      return view('missingFileTitle', t('downloadFailed'), message, ['retry', 'chooseModel'], code);
    case 'MODEL_FILE_READ':
      // A server that ignores Range can only serve small models: say so in the title, not just the detail.
      return view(/Range|206/.test(message) ? 'noRangeTitle' : 'downloadFailedTitle', t('downloadFailed'), message, ['retry', 'chooseModel'], code);
    case 'UNSUPPORTED_MODEL':
    case 'SAFETENSORS_FORMAT':
    case 'TOKENIZER':
      return view('unsupportedTitle', message, '', ['chooseModel'], code);
    case 'DEVICE_LOST':
      return view('deviceLostTitle', t('deviceLost'), message, ['reloadModel'], code);
    default:
      return view('errorTitle', t('genericError'), message, ['retry', 'chooseModel'], code);
  }
}

/** A generation error as the page shows it (the conversation stays; the reply is marked failed). */
export function generationProblem(error: unknown): Problem {
  const { code = 'UNKNOWN', message = String(error) } = (error ?? {}) as TypedError;
  switch (code) {
    case 'CONTEXT_OVERFLOW':
    case 'KV_CACHE_FULL':
      return view('contextTitle', t('context'), message, ['newChat'], code);
    case 'DEVICE_LOST':
    case 'ENGINE_DISPOSED':
    case 'WORKER':
      return view('deviceLostTitle', t('deviceLost'), message, ['reloadModel'], code);
    default:
      return view('generationFailed', t('genericError'), message, ['reloadModel'], code);
  }
}
