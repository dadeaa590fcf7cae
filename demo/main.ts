// The demo page: load a model (the bundled tri-tiny unless ?model= names another), then stream a
// continuation, or chat turn by turn: each chat turn sends the whole conversation, and the engine serves
// the part it has seen from its KV cache, so follow-ups start fast (the stats line says how many prompt
// tokens came from the cache). Model output is untrusted: it is only ever written with textContent.
import { type ChatMessage, TriEngine, WebGPUUnavailableError, type WeightFormatOptions } from '../src/index.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $<HTMLParagraphElement>('status');
const progress = $<HTMLProgressElement>('progress');
const form = $<HTMLFormElement>('prompt-form');
const promptBox = $<HTMLTextAreaElement>('prompt');
const chatMode = $<HTMLInputElement>('chat-mode');
const maxTokens = $<HTMLInputElement>('max-tokens');
const temperature = $<HTMLInputElement>('temperature');
const topP = $<HTMLInputElement>('top-p');
const seed = $<HTMLInputElement>('seed');
const generateButton = $<HTMLButtonElement>('generate');
const stopButton = $<HTMLButtonElement>('stop');
const output = $<HTMLPreElement>('output');
const stats = $<HTMLParagraphElement>('stats');
const transcript = $<HTMLOListElement>('transcript');
const newChatButton = $<HTMLButtonElement>('new-chat');

const query = new URLSearchParams(location.search);
const modelUrl = query.get('model') ?? new URL('models/tri-tiny/', location.href).href;
$('model-name').textContent = modelUrl;
const weightsParam = query.get('weights');
const weights: WeightFormatOptions | undefined =
  weightsParam === 'f32' || weightsParam === 'f16' || weightsParam === 'q4' ? { format: weightsParam } : undefined;

function showStatus(text: string, isError = false): void {
  status.textContent = text;
  status.classList.toggle('error', isError);
  document.body.dataset.state = isError ? 'error' : text === 'Ready.' ? 'ready' : 'busy';
}

function setBusy(busy: boolean): void {
  generateButton.disabled = busy;
  promptBox.disabled = busy;
  stopButton.disabled = !busy;
}

async function main(): Promise<void> {
  if (!('gpu' in navigator)) {
    throw new WebGPUUnavailableError(
      'This browser has no WebGPU. Use a recent Chrome or Edge (113+), Safari 26+, or Firefox 141+ on Windows.',
    );
  }
  showStatus('Loading model…');
  progress.hidden = false;
  const engine = await TriEngine.load(modelUrl, {
    weights,
    onProgress: ({ loadedBytes, totalBytes }) => {
      progress.value = loadedBytes / totalBytes;
      showStatus(`Loading weights: ${(loadedBytes / 1e6).toFixed(1)} / ${(totalBytes / 1e6).toFixed(1)} MB`);
    },
  });
  progress.hidden = true;
  $('weights-name').textContent = engine.weights.format;
  chatMode.disabled = !engine.text.hasChatTemplate;
  showStatus('Ready.');
  setBusy(false);

  let controller: AbortController | undefined;
  let conversation: ChatMessage[] = [];
  const addTurn = (message: ChatMessage) => {
    const item = document.createElement('li');
    item.className = message.role;
    item.textContent = message.content;
    transcript.append(item);
  };
  stopButton.addEventListener('click', () => controller?.abort());
  newChatButton.addEventListener('click', () => {
    conversation = [];
    transcript.replaceChildren();
    output.textContent = '';
    stats.textContent = '';
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    controller = new AbortController();
    setBusy(true);
    showStatus('Generating…');
    output.textContent = '';
    stats.textContent = '';
    const text = promptBox.value;
    try {
      const chat = chatMode.checked;
      const messages = [...conversation, { role: 'user', content: text }];
      const prompt = chat ? messages : text;
      const stream = engine.generate(prompt, {
        maxNewTokens: Number(maxTokens.value) || 48,
        temperature: Number(temperature.value) || 0,
        topP: Number(topP.value) || 1,
        seed: Math.max(0, Math.floor(Number(seed.value) || 0)),
        signal: controller.signal,
      });
      let step = await stream.next();
      while (!step.done) {
        output.textContent += step.value.text;
        step = await stream.next();
      }
      const { usage, timings, finishReason } = step.value;
      stats.textContent =
        `${usage.completionTokens} tokens, ${timings.decodeTokensPerSecond.toFixed(1)} tok/s decode, ` +
        `prefill ${usage.promptTokens} tokens in ${(timings.prefillSeconds * 1000).toFixed(0)} ms ` +
        `(${usage.cachedPromptTokens} from the KV cache), finish: ${finishReason}`;
      if (chat) {
        conversation = [...messages, { role: 'assistant', content: step.value.text }];
        addTurn(messages.at(-1)!);
        addTurn(conversation.at(-1)!);
        promptBox.value = '';
      }
      showStatus('Ready.');
    } catch (error) {
      showStatus(`Generation failed: ${(error as Error).message}`, true);
    } finally {
      setBusy(false);
    }
  });
}

main().catch((error: unknown) => {
  progress.hidden = true;
  showStatus((error as Error).message, true);
});
