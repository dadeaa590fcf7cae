// The Models dialog: pick the bundled model, Tri-7B, any Hugging Face repo or URL, or a local folder;
// see what it needs before a byte of weights moves (download size, what is already stored, GPU memory
// against this device, browser storage), and a clear "won't fit" with the reasons; manage stored models.
import { clearModelCache, deleteCachedModel, listCachedModels, type LoadPlan, storageEstimate } from '../../src/index.ts';
import type { WorkerLoadOptions } from '../../src/worker/protocol.ts';
import { bundledModel, bundledVisionModel, type EngineHost, modelFromAddress, type ModelSource, TRI_7B_REPO, topLevelFiles } from './engine-host.ts';
import { t } from './i18n.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MB`;
  return `${Math.max(0, Math.round(bytes / 1024))} kB`;
}

/** The files of a dropped folder (top level only), or the dropped files themselves. */
async function droppedFiles(transfer: DataTransfer): Promise<File[]> {
  const entries = [...transfer.items].map((item) => item.webkitGetAsEntry?.()).filter((entry): entry is FileSystemEntry => !!entry);
  const files: File[] = [];
  for (const entry of entries) {
    if (entry.isFile) files.push(await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject)));
    if (!entry.isDirectory) continue;
    const reader = (entry as FileSystemDirectoryEntry).createReader();
    // readEntries answers in batches until it returns none.
    for (;;) {
      const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
      if (batch.length === 0) break;
      for (const child of batch) {
        if (child.isFile) files.push(await new Promise<File>((resolve, reject) => (child as FileSystemFileEntry).file(resolve, reject)));
      }
    }
  }
  return files.length > 0 ? files : [...transfer.files];
}

export class ModelDialog {
  private readonly dialog = $<HTMLDialogElement>('model-dialog');
  private readonly hubAddress = $<HTMLInputElement>('hub-address');
  private readonly folderInput = $<HTMLInputElement>('folder-input');
  private readonly dropZone = $<HTMLDivElement>('drop-zone');
  private readonly dropHint = $<HTMLSpanElement>('drop-hint');
  private readonly planView = $<HTMLDivElement>('plan');
  private readonly loadButton = $<HTMLButtonElement>('load-model');
  private readonly checkButton = $<HTMLButtonElement>('check-model');
  private pickedFiles: File[] = [];
  private pickedName = '';
  /** The plan shown, for the selection it was made for. */
  private checked: { key: string; plan: LoadPlan } | undefined;
  private planning: AbortController | undefined;
  private readonly host: EngineHost;
  private readonly loadOptions: () => WorkerLoadOptions;
  private readonly onLoad: (source: ModelSource) => void;

  constructor(host: EngineHost, loadOptions: () => WorkerLoadOptions, onLoad: (source: ModelSource) => void) {
    this.host = host;
    this.loadOptions = loadOptions;
    this.onLoad = onLoad;
    this.dialog.addEventListener('change', (event) => {
      if ((event.target as HTMLElement).closest('input[name="model"]')) this.selectionChanged();
    });
    this.hubAddress.addEventListener('focus', () => this.choose('hub'));
    this.hubAddress.addEventListener('input', () => this.selectionChanged());
    this.hubAddress.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.isComposing) {
        event.preventDefault();
        void this.check();
      }
    });
    this.folderInput.addEventListener('change', () => this.pick(topLevelFiles(this.folderInput.files ?? []), this.folderInput.files?.[0]?.webkitRelativePath.split('/')[0] ?? ''));
    this.dropZone.addEventListener('dragover', (event) => {
      event.preventDefault();
      this.dropZone.classList.add('over');
    });
    this.dropZone.addEventListener('dragleave', () => this.dropZone.classList.remove('over'));
    this.dropZone.addEventListener('drop', (event) => {
      event.preventDefault();
      this.dropZone.classList.remove('over');
      const name = event.dataTransfer?.items[0]?.webkitGetAsEntry?.()?.name ?? '';
      if (event.dataTransfer) void droppedFiles(event.dataTransfer).then((files) => this.pick(files, name));
    });
    this.checkButton.addEventListener('click', () => void this.check());
    this.loadButton.addEventListener('click', () => void this.load());
    $('clear-models').addEventListener('click', async () => {
      await clearModelCache();
      await this.refreshStored();
    });
    $('cached-models').addEventListener('click', async (event) => {
      const button = (event.target as HTMLElement).closest<HTMLButtonElement>('button[data-location]');
      if (!button) return;
      button.disabled = true;
      await deleteCachedModel(button.dataset.location!);
      await this.refreshStored();
    });
  }

  open(focusStored = false): void {
    const current = this.host.source;
    $('current-model').textContent = current ? t('currentModel', { name: current.name, format: this.host.engine?.weights.format ?? '' }) : t('noModelLoaded');
    this.dropHint.textContent = this.pickedFiles.length > 0 ? t('filesChosen', { count: this.pickedFiles.length, name: this.pickedName }) : t('dropHint');
    // The loaded bundled model is the one selected (the page may have opened it from ?model=).
    const bundled = [['bundled', bundledModel()], ['vision', bundledVisionModel()]] as const;
    const loaded = bundled.find(([, source]) => current?.kind === 'url' && source.kind === 'url' && source.url === current.url);
    if (!this.dialog.open && loaded) this.choose(loaded[0]);
    if (!this.dialog.open) this.dialog.showModal();
    void this.refreshStored();
    if (focusStored) $('cached-models').scrollIntoView({ block: 'center' });
  }

  private choose(value: string): void {
    const radio = this.dialog.querySelector<HTMLInputElement>(`input[name="model"][value="${value}"]`)!;
    if (!radio.checked) {
      radio.checked = true;
      this.selectionChanged();
    }
  }

  private pick(files: File[], name: string): void {
    this.pickedFiles = files;
    this.pickedName = name || 'folder';
    this.dropHint.textContent = t('filesChosen', { count: files.length, name: this.pickedName });
    this.choose('local');
    this.selectionChanged();
  }

  private selectionChanged(): void {
    this.planning?.abort();
    this.checked = undefined;
    this.planView.replaceChildren();
    this.loadButton.disabled = false;
    this.loadButton.textContent = t('loadModel');
  }

  /** The selected model, or undefined (with the reason shown) when the selection is incomplete. */
  private selection(): ModelSource | undefined {
    const value = this.dialog.querySelector<HTMLInputElement>('input[name="model"]:checked')?.value;
    if (value === 'bundled') return bundledModel();
    if (value === 'vision') return bundledVisionModel();
    if (value === 'tri7b') return modelFromAddress(TRI_7B_REPO);
    if (value === 'local') return this.pickedFiles.length > 0 ? { kind: 'files', files: this.pickedFiles, name: this.pickedName } : undefined;
    return modelFromAddress(this.hubAddress.value);
  }

  private key(source: ModelSource): string {
    return source.kind === 'url' ? source.url : `files:${source.name}:${source.files.length}`;
  }

  private async check(): Promise<LoadPlan | undefined> {
    const source = this.selection();
    if (!source) {
      this.showMessage(t('selectionIncomplete'));
      return undefined;
    }
    if (this.checked?.key === this.key(source)) return this.checked.plan;
    this.planning?.abort();
    const planning = (this.planning = new AbortController());
    this.showMessage(t('planChecking'));
    this.checkButton.disabled = true;
    try {
      const plan = await this.host.plan(source, this.loadOptions(), planning.signal);
      if (planning.signal.aborted) return undefined;
      this.checked = { key: this.key(source), plan };
      this.showPlan(plan);
      return plan;
    } catch (error) {
      if (!planning.signal.aborted) this.showMessage(`${t('planWontFit')} ${(error as Error).message}`, true);
      return undefined;
    } finally {
      this.checkButton.disabled = false;
    }
  }

  private async load(): Promise<void> {
    const source = this.selection();
    if (!source) return this.showMessage(t('selectionIncomplete'));
    const plan = await this.check();
    if (!plan?.fits) return;
    this.dialog.close();
    this.onLoad(source);
  }

  private showMessage(text: string, isError = false): void {
    const line = document.createElement('p');
    line.textContent = text;
    if (isError) line.className = 'wont-fit';
    this.planView.replaceChildren(line);
  }

  private showPlan(plan: LoadPlan): void {
    const budget = plan.limits.memoryBudgetBytes;
    const summary = document.createElement('p');
    summary.textContent = t('planSummary', {
      download: formatBytes(plan.downloadBytes), cached: formatBytes(plan.cachedBytes), gpu: formatBytes(plan.gpuBytes.total),
      weights: formatBytes(plan.gpuBytes.weights), kv: formatBytes(plan.gpuBytes.kvCache),
      device: budget === undefined ? t('planDeviceUnknown') : t('planDeviceBudget', { budget: formatBytes(budget) }),
    });
    const parts: HTMLElement[] = [summary];
    if (plan.storage) {
      const storage = document.createElement('p');
      storage.textContent = t('planStorage', { free: formatBytes(plan.storage.quota - plan.storage.usage), quota: formatBytes(plan.storage.quota) });
      parts.push(storage);
    }
    if (!plan.fits) {
      const heading = document.createElement('p');
      heading.className = 'wont-fit';
      heading.textContent = t('planWontFit');
      const reasons = document.createElement('ul');
      for (const reason of plan.reasons) reasons.append(Object.assign(document.createElement('li'), { textContent: reason }));
      parts.push(heading, reasons);
    }
    this.planView.replaceChildren(...parts);
    this.loadButton.disabled = !plan.fits;
    const toDownload = plan.downloadBytes - plan.cachedBytes;
    this.loadButton.textContent = toDownload > 0 && this.selection()?.kind === 'url' ? t('loadModelSize', { size: formatBytes(toDownload) }) : t('loadModel');
  }

  async refreshStored(): Promise<void> {
    const [models, estimate] = await Promise.all([listCachedModels().catch(() => []), storageEstimate().catch(() => undefined)]);
    const list = $<HTMLUListElement>('cached-models');
    list.replaceChildren(...models.map((model) => {
      const item = document.createElement('li');
      const where = Object.assign(document.createElement('span'), { className: 'where', textContent: `${model.location} · ${formatBytes(model.bytes)}` });
      const remove = Object.assign(document.createElement('button'), { type: 'button', className: 'danger', textContent: t('delete') });
      remove.dataset.location = model.location;
      item.append(where, remove);
      return item;
    }));
    if (models.length === 0) list.append(Object.assign(document.createElement('li'), { className: 'muted', textContent: t('noCachedModels') }));
    $('storage-used').textContent = estimate ? t('storageUsed', { usage: formatBytes(estimate.usage), quota: formatBytes(estimate.quota) }) : '';
    $<HTMLButtonElement>('clear-models').disabled = models.length === 0;
  }
}
