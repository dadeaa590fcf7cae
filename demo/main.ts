// The chat app: conversations with a model that runs in a Web Worker on this device's GPU. This file
// wires the page together: loading (with progress and typed errors turned into advice), the conversation
// (send, stream, stop, regenerate, edit and resend), history in IndexedDB, settings per conversation.
// Model output is untrusted: it reaches the DOM only as sanitised Markdown (chat/markdown.ts) or as text.
import type { LoadProgress, SamplingOptions, WorkerEngine } from '../src/index.ts';
import type { WorkerLoadOptions } from '../src/worker/protocol.ts';
import { Attachments, thumbnail } from './chat/attachments.ts';
import { Composer } from './chat/composer.ts';
import { BUNDLED_VISION_NAME, bundledModel, EngineHost, modelFromAddress, type ModelSource } from './chat/engine-host.ts';
import { type ChatSettings, type Conversation, History, newId, type StoredMessage, titleFrom } from './chat/history.ts';
import { currentLanguage, setLanguage, t, textLanguage, translatePage } from './chat/i18n.ts';
import { MarkdownView } from './chat/markdown.ts';
import { ModelDialog } from './chat/model-dialog.ts';
import { generationProblem, loadProblem, type Problem, type ProblemAction } from './chat/problems.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const LAST_MODEL_KEY = 'tri-chat.model';
const THEME_KEY = 'tri-chat.theme';
/** Longest reply by default: long enough for a real answer from Tri-7B; the bundled model stops far sooner. */
const DEFAULT_MAX_TOKENS = 512;

type AppState = 'starting' | 'loading' | 'ready' | 'generating' | 'error';

const log = $<HTMLElement>('log');
const messageList = $<HTMLOListElement>('messages');
const welcome = $<HTMLElement>('welcome');
const sendButton = $<HTMLButtonElement>('send');
const stopButton = $<HTMLButtonElement>('stop');
const announcer = $<HTMLParagraphElement>('announcer');
const composer = new Composer($<HTMLTextAreaElement>('composer'), (text) => void send(text));
const attachButton = $<HTMLButtonElement>('attach');
const attachNote = $<HTMLParagraphElement>('attach-note');
const attachments = new Attachments($<HTMLUListElement>('attachments'), $<HTMLInputElement>('image-input'), attachButton, $('composer-form'), composer.textarea, (reason) => {
  attachNote.textContent = reason;
  attachNote.hidden = false;
  setTimeout(() => (attachNote.hidden = true), 4000);
});

const host = new EngineHost();
let history: History;
let conversations: Conversation[] = [];
let current: Conversation;
/** Settings a new conversation starts with: the loaded model's generation_config.json. */
let modelDefaults: SamplingOptions = { temperature: 0 };
let hasChatTemplate = true;
/** Developer load options from the Advanced panel (and the ?weights= parameter). */
const loadOptions: WorkerLoadOptions = {};
let lastAttempt: ModelSource | undefined;
let loading: AbortController | undefined;
let generation: { controller: AbortController; conversation: Conversation } | undefined;
/** Follow the reply as it grows, until the user scrolls up to read. */
let followReply = true;

// ---- State, announcements, problems ----

function setState(state: AppState): void {
  document.body.dataset.state = state;
  const canSend = state === 'ready';
  composer.textarea.disabled = !(state === 'ready' || state === 'generating');
  composer.busy = state === 'generating';
  sendButton.disabled = !canSend;
  sendButton.hidden = state === 'generating';
  stopButton.hidden = state !== 'generating';
  for (const chip of welcome.querySelectorAll<HTMLButtonElement>('.suggestion')) chip.disabled = !canSend;
}

/** Screen readers hear state changes once, not every streamed token. */
function announce(text: string): void {
  announcer.textContent = text;
}

function showProblem(problem: Problem | undefined): void {
  const panel = $<HTMLElement>('problem');
  panel.hidden = !problem;
  if (!problem) return;
  panel.dataset.code = problem.code;
  $('problem-title').textContent = problem.title;
  $('problem-advice').textContent = problem.advice;
  $('problem-detail').textContent = problem.detail;
  const labels: Record<ProblemAction, string> = {
    reloadModel: t('reloadModel'), retry: t('retry'), chooseModel: t('chooseModel'), manageModels: t('manageModels'),
    newChat: t('newChat'), tryInt8: t('tryInt8'), tryShorter: t('tryShorter'),
  };
  $('problem-actions').replaceChildren(...problem.actions.map((action, index) => {
    const button = Object.assign(document.createElement('button'), { type: 'button', textContent: labels[action], className: index === 0 ? 'primary' : '' });
    button.dataset.action = action;
    return button;
  }));
}

$('problem-actions').addEventListener('click', (event) => {
  const action = (event.target as HTMLElement).closest<HTMLButtonElement>('button[data-action]')?.dataset.action as ProblemAction | undefined;
  if (!action) return;
  const again = host.source ?? lastAttempt ?? bundledModel();
  if (action === 'reloadModel' || action === 'retry') void loadModel(again);
  if (action === 'chooseModel') modelDialog.open();
  if (action === 'manageModels') modelDialog.open(true);
  if (action === 'newChat') startNewChat();
  if (action === 'tryInt8' || action === 'tryShorter') {
    if (action === 'tryInt8') loadOptions.kvCache = 'int8';
    else loadOptions.contextLength = 1024;
    void loadModel(again);
  }
});

// ---- Loading a model ----

function showLoadProgress(phase: string, progress: LoadProgress | undefined): void {
  $('load-panel').hidden = false;
  $('load-phase').textContent = phase;
  const bar = $<HTMLProgressElement>('load-progress');
  if (!progress || progress.totalBytes === 0) {
    bar.removeAttribute('value'); // indeterminate until the weights start
    $('load-detail').textContent = '';
    return;
  }
  const fraction = progress.loadedBytes / progress.totalBytes;
  bar.value = fraction;
  const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
  const eta = progress.etaSeconds;
  $('load-detail').textContent = t('loadDetail', {
    loaded: mb(progress.loadedBytes), total: mb(progress.totalBytes), percent: Math.floor(fraction * 100),
    rate: progress.bytesPerSecond > 0 ? t('rate', { rate: mb(progress.bytesPerSecond) }) : '',
    eta: eta !== undefined && eta > 1 && fraction < 1 ? t('eta', { eta: eta >= 90 ? `${Math.round(eta / 60)} min` : `${Math.round(eta)} s` }) : '',
  });
}

async function loadModel(source: ModelSource): Promise<void> {
  loading?.abort();
  generation?.controller.abort();
  const controller = (loading = new AbortController());
  lastAttempt = source;
  showProblem(undefined);
  setState('loading');
  announce(t('statusLoading'));
  $('model-name').textContent = source.name;
  $('model-format').textContent = '';
  showLoadProgress(t('phaseOpening'), undefined);
  try {
    const engine = await host.load(source, loadOptions, (progress) => {
      const phase = { download: progress.converting ? t('phaseWeights') : t('phaseDownload'), read: t('phaseCachedWeights'), prepare: t('phaseGpu'), store: t('phaseStore') }[progress.phase];
      showLoadProgress(phase, progress);
    }, controller.signal);
    if (controller !== loading) return;
    modelLoaded(engine, source);
  } catch (error) {
    if (controller !== loading) return;
    $('model-name').textContent = t('noModelLoaded');
    if (controller.signal.aborted) {
      showProblem({ title: t('loadCancelled'), advice: '', detail: '', actions: ['retry', 'chooseModel'], code: 'CANCELLED' });
    } else {
      showProblem(loadProblem(error));
    }
    setState('error');
  } finally {
    if (controller === loading) {
      loading = undefined;
      $('load-panel').hidden = true;
    }
  }
}

function modelLoaded(engine: WorkerEngine, source: ModelSource): void {
  modelDefaults = engine.generationDefaults;
  hasChatTemplate = engine.hasChatTemplate;
  $('model-name').textContent = source.name;
  $('model-format').textContent = ` · ${engine.weights.format}`;
  // A vision model takes pictures: the Attach button, paste and drop; the bundled one shows its example pictures.
  attachments.enabled = engine.acceptsImages;
  attachButton.hidden = !engine.acceptsImages;
  if (!engine.acceptsImages) attachments.clear();
  // The welcome speaks of the bundled model in use: the chat model's greetings, or the vision model's pictures.
  const bundledVision = source.name === BUNDLED_VISION_NAME;
  $('example-pictures').hidden = !bundledVision;
  $('suggestions').hidden = bundledVision;
  $('welcome-text').dataset.i18n = bundledVision ? 'welcomeTextVision' : 'welcomeText';
  $('welcome-text').textContent = t(bundledVision ? 'welcomeTextVision' : 'welcomeText');
  if (source.kind === 'url') localStorage.setItem(LAST_MODEL_KEY, JSON.stringify({ url: source.url, name: source.name }));
  // A conversation not started yet takes this model's defaults.
  if (current.messages.length === 0) current.settings = defaultSettings();
  setState('ready');
  announce(t('statusReady'));
  composer.focus();
  void engine.lost.then((lost) => {
    if (host.engine !== engine) return;
    generation?.controller.abort();
    showProblem({ ...loadProblem(lost), actions: ['reloadModel'] });
    setState('error');
  });
}

$('cancel-load').addEventListener('click', () => {
  loading?.abort();
  host.unload();
});

// ---- Conversations ----

function defaultSettings(): ChatSettings {
  return {
    mode: hasChatTemplate ? 'chat' : 'plain', systemPrompt: '',
    temperature: modelDefaults.temperature ?? 0, topP: modelDefaults.topP ?? 1, topK: modelDefaults.topK ?? 0,
    repetitionPenalty: modelDefaults.repetitionPenalty ?? 1, maxTokens: DEFAULT_MAX_TOKENS, seed: modelDefaults.seed ?? 0,
  };
}

function draftConversation(): Conversation {
  const now = Date.now();
  return { id: newId(), title: '', createdAt: now, updatedAt: now, settings: defaultSettings(), messages: [] };
}

/** Conversations the user deleted: a reply still finishing in one must not bring it back. */
const deleted = new Set<string>();

async function persist(conversation: Conversation): Promise<void> {
  if (conversation.messages.length === 0 || deleted.has(conversation.id)) return;
  conversation.updatedAt = Date.now();
  if (!conversations.includes(conversation)) conversations.unshift(conversation);
  conversations.sort((a, b) => b.updatedAt - a.updatedAt);
  renderSidebar();
  // A failed write (storage full, private mode) must not break the chat: the conversation stays in memory.
  await history.save(conversation).catch((error: unknown) => console.warn('the conversation could not be saved:', error));
}

function stopGeneration(): void {
  generation?.controller.abort();
}

function startNewChat(): void {
  stopGeneration();
  openConversation(draftConversation());
  closeSidebar();
  composer.focus();
}

function openConversation(conversation: Conversation): void {
  if (generation && generation.conversation !== conversation) stopGeneration();
  current = conversation;
  history.lastOpened = conversation.id;
  renderConversation();
  renderSidebar();
  composer.textarea.placeholder = conversation.settings.mode === 'plain' ? t('composerPlaceholderPlain') : t('composerPlaceholder');
}

// ---- Rendering messages ----

const views = new Map<string, { item: HTMLLIElement; markdown: MarkdownView | undefined }>();

function messageItem(message: StoredMessage): HTMLLIElement {
  const item = ($<HTMLTemplateElement>('message-template').content.firstElementChild!.cloneNode(true)) as HTMLLIElement;
  item.dataset.id = message.id;
  item.classList.add(message.role);
  item.querySelector('.speaker')!.textContent = message.role === 'user' ? t('you') : t('assistant');
  const body = item.querySelector<HTMLElement>('.body')!;
  let markdown: MarkdownView | undefined;
  if (message.role === 'user') {
    body.textContent = message.content;
    if (message.images?.length) {
      const pictures = Object.assign(document.createElement('div'), { className: 'pictures' });
      pictures.append(...message.images.map(thumbnail));
      body.prepend(pictures);
    }
  } else markdown = new MarkdownView(body, t('copyCode'));
  views.set(message.id, { item, markdown });
  updateMessage(message);
  return item;
}

function updateMessage(message: StoredMessage, streaming = false): void {
  const view = views.get(message.id);
  if (!view) return;
  const { item, markdown } = view;
  const body = item.querySelector<HTMLElement>('.body')!;
  if (markdown) {
    markdown.update(message.content);
    if (streaming && message.content === '') body.replaceChildren(Object.assign(document.createElement('span'), { className: 'thinking', textContent: t('thinking') }));
    else body.querySelector('.thinking')?.remove();
  }
  if (message.content) item.lang = textLanguage(message.content);
  const empty = !streaming && message.role === 'assistant' && message.content.trim() === '' && !message.error;
  item.classList.toggle('stopped', !!message.stopped);
  item.classList.toggle('failed', !!message.error);
  item.classList.toggle('empty', empty);
  item.classList.toggle('streaming', streaming);
  const note = item.querySelector<HTMLElement>('.note')!;
  note.textContent = message.error ? `${t('generationFailed')}: ${message.error.message}` : message.stopped ? t('stopped') : empty ? t('emptyReply') : '';
  note.hidden = note.textContent === '';
  item.querySelector('.stats')?.remove();
  if (message.stats && !streaming) {
    const { tokens, tokensPerSecond, promptTokens, cachedTokens } = message.stats;
    const stats = Object.assign(document.createElement('p'), { className: 'stats', textContent: t('replyStats', { tokens, rate: tokensPerSecond.toFixed(1), cached: cachedTokens, prompt: promptTokens }) });
    note.after(stats);
  }
  renderActions(message, item, streaming);
}

function renderActions(message: StoredMessage, item: HTMLLIElement, streaming: boolean): void {
  const actions = item.querySelector<HTMLElement>('.message-actions')!;
  const button = (action: string, label: string) => {
    const element = Object.assign(document.createElement('button'), { type: 'button', textContent: label });
    element.dataset.action = action;
    return element;
  };
  const buttons: HTMLButtonElement[] = [];
  const isLast = current.messages.at(-1)?.id === message.id;
  if (!streaming) {
    if (message.content) buttons.push(button('copy', t('copy')));
    if (message.role === 'user') buttons.push(button('edit', t('edit')));
    if (message.role === 'assistant' && isLast) buttons.push(button('regenerate', t('regenerate')));
  }
  actions.replaceChildren(...buttons);
}

function renderConversation(): void {
  views.clear();
  messageList.replaceChildren(...current.messages.map(messageItem));
  welcome.hidden = current.messages.length > 0;
  followReply = true;
  scrollToEnd();
}

/** Shows a message just added at the end; the one before it loses its last-message action (Regenerate). */
function appendMessage(message: StoredMessage): void {
  const previous = current.messages.at(-2);
  if (previous) updateMessage(previous);
  messageList.append(messageItem(message));
  welcome.hidden = true;
}

function scrollToEnd(): void {
  if (followReply) log.scrollTop = log.scrollHeight;
}

log.addEventListener('scroll', () => {
  followReply = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
});

// ---- Sending and generating ----

async function send(text: string): Promise<void> {
  if (!host.engine || generation) return;
  const conversation = current;
  if (conversation.messages.length === 0) conversation.title = titleFrom(text);
  const images = attachments.take();
  const message: StoredMessage = { id: newId(), role: 'user', content: text, ...(images.length ? { images } : {}) };
  conversation.messages.push(message);
  appendMessage(message);
  await reply(conversation);
}

/** The prompt for the next reply: the chat so far (chat mode), or the last text to continue (plain). */
function promptFor(conversation: Conversation) {
  const { settings } = conversation;
  const lastUser = [...conversation.messages].reverse().find((message) => message.role === 'user')!;
  if (settings.mode === 'plain') return lastUser.content;
  // Pictures go to a model that sees them (a conversation from a vision model, continued with a text one, keeps only its text).
  const seesImages = host.engine?.acceptsImages ?? false;
  const turns = conversation.messages
    .filter((message) => !message.error)
    .map((message) => ({
      role: message.role,
      content: seesImages && message.images?.length
        ? [...message.images.map((image) => ({ type: 'image' as const, image })), { type: 'text' as const, text: message.content }]
        : message.content,
    }));
  return settings.systemPrompt.trim() ? [{ role: 'system' as const, content: settings.systemPrompt }, ...turns] : turns;
}

async function reply(conversation: Conversation): Promise<void> {
  const engine = host.engine!;
  const message: StoredMessage = { id: newId(), role: 'assistant', content: '' };
  const prompt = promptFor(conversation);
  conversation.messages.push(message);
  const controller = new AbortController();
  generation = { controller, conversation };
  showProblem(undefined); // an earlier reply's failure is over once a new one starts
  // Only the new message is added: earlier ones keep their rendered Markdown and highlighted code.
  appendMessage(message);
  updateMessage(message, true);
  followReply = true;
  scrollToEnd();
  setState('generating');
  announce(t('statusGenerating'));
  void persist(conversation);
  const shown = () => current === conversation;
  let frame = 0;
  try {
    const { settings } = conversation;
    const stream = engine.generate(prompt, {
      maxNewTokens: settings.maxTokens, temperature: settings.temperature, topP: settings.topP, topK: settings.topK,
      repetitionPenalty: settings.repetitionPenalty, seed: settings.seed, signal: controller.signal,
    });
    for await (const chunk of stream) {
      message.content += chunk.text;
      // One render per frame however fast tokens come; a conversation in the background renders when opened.
      if (!frame && shown()) {
        frame = requestAnimationFrame(() => {
          frame = 0;
          if (!shown()) return;
          updateMessage(message, true);
          scrollToEnd();
        });
      }
    }
    const result = await stream.result;
    message.stopped = result.finishReason === 'abort';
    message.stats = {
      tokens: result.usage.completionTokens, tokensPerSecond: result.timings.decodeTokensPerSecond,
      promptTokens: result.usage.promptTokens, cachedTokens: result.usage.cachedPromptTokens,
    };
    announce(message.stopped ? t('statusStopped') : t('statusDone'));
  } catch (error) {
    const problem = generationProblem(error);
    message.error = { code: problem.code, message: problem.title };
    if (shown()) showProblem(problem);
  } finally {
    cancelAnimationFrame(frame);
    if (generation?.controller === controller) generation = undefined;
    if (shown()) {
      updateMessage(message);
      scrollToEnd();
    }
    // Saved before the page says it is ready again, so a reload right after keeps the whole reply.
    await persist(conversation);
    if (document.body.dataset.state === 'generating') setState(host.engine ? 'ready' : 'error');
    if (shown() && document.body.dataset.state === 'ready') composer.focus();
  }
}

stopButton.addEventListener('click', () => {
  stopGeneration();
  composer.focus();
});

$<HTMLFormElement>('composer-form').addEventListener('submit', (event) => {
  event.preventDefault();
  composer.send();
});

welcome.addEventListener('click', (event) => {
  const chip = (event.target as HTMLElement).closest<HTMLButtonElement>('.suggestion');
  if (chip && document.body.dataset.state === 'ready') void send(chip.textContent!);
  const picture = (event.target as HTMLElement).closest<HTMLButtonElement>('.example-picture');
  if (picture) void attachExample(picture);
});

/** An example picture of the bundled vision model, attached with a question (in the page's language) if the box is empty. */
async function attachExample(button: HTMLButtonElement): Promise<void> {
  const image = button.querySelector('img')!;
  const blob = await (await fetch(image.src)).blob();
  attachments.add([new File([blob], image.alt, { type: blob.type || 'image/png' })]);
  if (composer.textarea.value.trim() === '') composer.textarea.value = t('examplePictureQuestion');
  composer.fitHeight();
  composer.focus();
}

messageList.addEventListener('click', async (event) => {
  const target = event.target as HTMLElement;
  const copyCode = target.closest<HTMLButtonElement>('.copy-code');
  if (copyCode) return copyText(copyCode, copyCode.parentElement!.querySelector('code')?.textContent ?? '', t('copyCode'));
  const button = target.closest<HTMLButtonElement>('button[data-action]');
  const id = target.closest<HTMLElement>('.message')?.dataset.id;
  const index = current.messages.findIndex((message) => message.id === id);
  if (!button || index < 0) return;
  const message = current.messages[index]!;
  switch (button.dataset.action) {
    case 'copy':
      return copyText(button, message.content, t('copy'));
    case 'regenerate':
      if (generation || !host.engine) return;
      current.messages.splice(index, 1);
      renderConversation();
      return reply(current);
    case 'edit':
      return editMessage(message, index);
  }
});

async function copyText(button: HTMLButtonElement, text: string, label: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = t('copied');
  } catch {
    // No clipboard outside secure contexts: select the text so the user can copy it by hand.
    const range = document.createRange();
    range.selectNodeContents(button.closest('pre') ?? button.closest('.message')!.querySelector('.body')!);
    getSelection()?.removeAllRanges();
    getSelection()?.addRange(range);
  }
  setTimeout(() => (button.textContent = label), 1500);
}

function editMessage(message: StoredMessage, index: number): void {
  const view = views.get(message.id)!;
  const body = view.item.querySelector<HTMLElement>('.body')!;
  const editor = document.createElement('div');
  editor.className = 'editor';
  const box = Object.assign(document.createElement('textarea'), { value: message.content });
  box.setAttribute('aria-label', t('edit'));
  const save = Object.assign(document.createElement('button'), { type: 'button', className: 'primary', textContent: t('saveAndSend') });
  const cancel = Object.assign(document.createElement('button'), { type: 'button', textContent: t('cancel') });
  const row = document.createElement('div');
  row.append(cancel, save);
  editor.append(box, row);
  body.replaceWith(editor);
  view.item.querySelector('.message-actions')!.replaceChildren();
  box.focus();
  const close = () => {
    editor.replaceWith(body);
    updateMessage(message);
  };
  cancel.addEventListener('click', close);
  save.addEventListener('click', () => {
    const text = box.value;
    if (text.trim() === '' || !host.engine || generation) return;
    current.messages.splice(index);
    if (index === 0) current.title = titleFrom(text);
    current.messages.push({ id: newId(), role: 'user', content: text, ...(message.images ? { images: message.images } : {}) });
    renderConversation();
    void reply(current);
  });
  box.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') close();
  });
}

// ---- Sidebar ----

const sidebar = $<HTMLElement>('sidebar');
const scrim = $<HTMLElement>('scrim');

function openSidebar(): void {
  sidebar.classList.add('open');
  scrim.hidden = false;
  sidebar.querySelector<HTMLElement>('#new-chat')!.focus();
}
function closeSidebar(): void {
  sidebar.classList.remove('open');
  scrim.hidden = true;
}
$('open-sidebar').addEventListener('click', openSidebar);
$('close-sidebar').addEventListener('click', closeSidebar);
scrim.addEventListener('click', closeSidebar);
$('new-chat').addEventListener('click', startNewChat);

function renderSidebar(): void {
  const list = $<HTMLUListElement>('conversation-list');
  list.replaceChildren(...conversations.map((conversation) => {
    const item = document.createElement('li');
    item.dataset.id = conversation.id;
    item.setAttribute('aria-current', String(conversation === current));
    const open = Object.assign(document.createElement('button'), { type: 'button', className: 'open', textContent: conversation.title || t('untitled') });
    open.dataset.action = 'open';
    open.lang = textLanguage(conversation.title);
    const rename = Object.assign(document.createElement('button'), { type: 'button', className: 'row-action', textContent: '✎', title: t('rename') });
    rename.dataset.action = 'rename';
    rename.setAttribute('aria-label', `${t('rename')}: ${conversation.title}`);
    const remove = Object.assign(document.createElement('button'), { type: 'button', className: 'row-action', textContent: '✕', title: t('delete') });
    remove.dataset.action = 'delete';
    remove.setAttribute('aria-label', `${t('delete')}: ${conversation.title}`);
    item.append(open, rename, remove);
    return item;
  }));
  $('no-conversations').hidden = conversations.length > 0;
}

$('conversation-list').addEventListener('click', async (event) => {
  const button = (event.target as HTMLElement).closest<HTMLButtonElement>('button[data-action]');
  const id = button?.closest<HTMLElement>('li')?.dataset.id;
  const conversation = conversations.find((candidate) => candidate.id === id);
  if (!button || !conversation) return;
  if (button.dataset.action === 'open') {
    openConversation(conversation);
    closeSidebar();
    composer.focus();
  }
  if (button.dataset.action === 'rename') renameInline(conversation, button.closest('li')!);
  if (button.dataset.action === 'delete') {
    if (!confirm(t('deleteConfirm', { title: conversation.title || t('untitled') }))) return;
    if (generation?.conversation === conversation) stopGeneration();
    deleted.add(conversation.id);
    conversations = conversations.filter((candidate) => candidate !== conversation);
    await history.delete(conversation.id);
    if (current === conversation) openConversation(draftConversation());
    else renderSidebar();
  }
});

function renameInline(conversation: Conversation, item: HTMLLIElement): void {
  const input = Object.assign(document.createElement('input'), { type: 'text', value: conversation.title });
  input.setAttribute('aria-label', t('renamePrompt'));
  item.replaceChildren(input);
  input.select();
  let done = false;
  const finish = (save: boolean) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    if (save && title) {
      conversation.title = title;
      void history.save(conversation);
    }
    renderSidebar();
  };
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.isComposing) finish(true);
    if (event.key === 'Escape') finish(false);
  });
  input.addEventListener('blur', () => finish(true));
}

// ---- Settings ----

const settingsDialog = $<HTMLDialogElement>('settings-dialog');
const settingsForm = $<HTMLFormElement>('settings-form');
const field = (name: string) => settingsForm.elements.namedItem(name) as HTMLInputElement;

function fillSettings(settings: ChatSettings): void {
  for (const radio of settingsForm.querySelectorAll<HTMLInputElement>('input[name="mode"]')) radio.checked = radio.value === settings.mode;
  for (const radio of settingsForm.querySelectorAll<HTMLInputElement>('input[name="mode"][value="chat"]')) radio.disabled = !hasChatTemplate;
  (settingsForm.elements.namedItem('systemPrompt') as HTMLTextAreaElement).value = settings.systemPrompt;
  for (const name of ['temperature', 'topP', 'topK', 'repetitionPenalty', 'maxTokens', 'seed'] as const) field(name).value = String(settings[name]);
  (settingsForm.elements.namedItem('weights') as HTMLSelectElement).value = loadOptions.weights?.format ?? '';
  (settingsForm.elements.namedItem('kvCache') as HTMLSelectElement).value = loadOptions.kvCache ?? '';
  field('contextLength').value = loadOptions.contextLength ? String(loadOptions.contextLength) : '';
}

$('settings-button').addEventListener('click', () => {
  fillSettings(current.settings);
  settingsDialog.returnValue = ''; // Escape keeps the last returnValue: never let it re-apply an old "save"
  settingsDialog.showModal();
});
$('reset-settings').addEventListener('click', () => fillSettings({ ...defaultSettings(), systemPrompt: (settingsForm.elements.namedItem('systemPrompt') as HTMLTextAreaElement).value }));
settingsDialog.addEventListener('close', () => {
  if (settingsDialog.returnValue !== 'save') return;
  const number = (name: string) => Number(field(name).value);
  current.settings = {
    mode: (settingsForm.querySelector<HTMLInputElement>('input[name="mode"]:checked')?.value as ChatSettings['mode']) ?? 'chat',
    systemPrompt: (settingsForm.elements.namedItem('systemPrompt') as HTMLTextAreaElement).value,
    temperature: number('temperature'), topP: number('topP'), topK: Math.round(number('topK')),
    repetitionPenalty: number('repetitionPenalty'), maxTokens: Math.round(number('maxTokens')), seed: Math.round(number('seed')),
  };
  openConversation(current);
  void persist(current);
});
$('apply-advanced').addEventListener('click', () => {
  if (!settingsForm.reportValidity()) return;
  const weights = (settingsForm.elements.namedItem('weights') as HTMLSelectElement).value;
  const kvCache = (settingsForm.elements.namedItem('kvCache') as HTMLSelectElement).value;
  const contextLength = Number(field('contextLength').value);
  if (weights === 'f32' || weights === 'f16' || weights === 'q4') loadOptions.weights = { format: weights };
  else delete loadOptions.weights;
  if (kvCache === 'f32' || kvCache === 'f16' || kvCache === 'int8') loadOptions.kvCache = kvCache;
  else delete loadOptions.kvCache;
  if (contextLength > 0) loadOptions.contextLength = contextLength;
  else delete loadOptions.contextLength;
  settingsDialog.close();
  void loadModel(host.source ?? lastAttempt ?? bundledModel());
});

// ---- Models, theme, language ----

const modelDialog = new ModelDialog(host, () => loadOptions, (source) => void loadModel(source));
$('model-button').addEventListener('click', () => modelDialog.open());

function applyTheme(theme: string | null): void {
  if (theme === 'light' || theme === 'dark') document.documentElement.dataset.theme = theme;
  const dark = theme ? theme === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches;
  const label = dark ? t('themeToLight') : t('themeToDark');
  $('theme-button').setAttribute('aria-label', label);
  $('theme-button').title = label;
}
$('theme-button').addEventListener('click', () => {
  const dark = document.documentElement.dataset.theme ? document.documentElement.dataset.theme === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches;
  localStorage.setItem(THEME_KEY, dark ? 'light' : 'dark');
  applyTheme(dark ? 'light' : 'dark');
});

function applyLanguage(): void {
  document.documentElement.lang = currentLanguage();
  $('language-button').lang = currentLanguage() === 'en' ? 'ko' : 'en';
  translatePage();
  applyTheme(localStorage.getItem(THEME_KEY));
  // translatePage() wrote the placeholder into the model name: put the loaded (or loading) model's back.
  $('model-name').textContent = host.source?.name ?? (loading ? lastAttempt?.name ?? '' : t('noModelLoaded'));
  if (current) openConversation(current);
}
$('language-button').addEventListener('click', () => {
  setLanguage(currentLanguage() === 'en' ? 'ko' : 'en');
  applyLanguage();
});

// ---- Start ----

/** The model to open with: ?model= (an address), else the last model used if it is fully stored, else the bundled one. */
async function startupModel(): Promise<ModelSource> {
  const asked = new URLSearchParams(location.search).get('model');
  if (asked) return modelFromAddress(asked) ?? bundledModel();
  try {
    const last = JSON.parse(localStorage.getItem(LAST_MODEL_KEY) ?? 'null') as { url: string; name: string } | null;
    const bundled = bundledModel();
    if (last && bundled.kind === 'url' && last.url !== bundled.url) {
      const source: ModelSource = { kind: 'url', ...last };
      const plan = await host.plan(source, loadOptions);
      // Never start a multi-gigabyte download just because the page was opened.
      if (plan.fits && plan.cachedBytes >= plan.downloadBytes) return source;
    }
  } catch {
    // The last model is gone or unreadable: open the bundled one.
  }
  return bundledModel();
}

/** WebGPU checks on the page, so a browser without it is told at once (the worker would say the same, later). */
async function gpuProblem(): Promise<Problem | undefined> {
  if (!('gpu' in navigator)) return loadProblem({ code: 'WEBGPU_UNAVAILABLE', reason: 'no-webgpu', message: 'navigator.gpu is missing' });
  const adapter = await navigator.gpu.requestAdapter().catch(() => null);
  if (!adapter) return loadProblem({ code: 'WEBGPU_UNAVAILABLE', reason: 'no-adapter', message: 'navigator.gpu.requestAdapter() returned no adapter' });
  return undefined;
}

async function start(): Promise<void> {
  const query = new URLSearchParams(location.search);
  const weights = query.get('weights');
  if (weights === 'f32' || weights === 'f16' || weights === 'q4') loadOptions.weights = { format: weights };
  // ?gpuBudgetMB=: behave as on a GPU with this much memory (what a phone would say, tried on a desktop).
  const budget = Number(query.get('gpuBudgetMB'));
  if (budget > 0) loadOptions.maxGpuBytes = budget * 2 ** 20;
  history = await History.open();
  conversations = await history.list();
  const last = conversations.find((conversation) => conversation.id === history.lastOpened);
  current = last ?? draftConversation();
  applyLanguage();
  const problem = await gpuProblem();
  if (problem) {
    showProblem(problem);
    setState('error');
    return;
  }
  await loadModel(await startupModel());
}

void start();
