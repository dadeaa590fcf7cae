// CPU reference of kernels/log-softmax.wgsl, in float64: the log-softmax of a row of logits at some ids,
// and the k most likely ids (larger logit first, ties to the lower id).

/** ln Σ exp(logits), computed stably. */
export function logSumExp(logits: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  return max + Math.log(sum);
}

/** log P(id) under softmax(logits), for each id. */
export function logProbabilities(logits: ArrayLike<number>, ids: readonly number[]): number[] {
  const lse = logSumExp(logits);
  return ids.map((id) => logits[id]! - lse);
}

/** The k most likely ids and their log-probabilities. */
export function topLogprobs(logits: ArrayLike<number>, k: number): { id: number; logprob: number }[] {
  const lse = logSumExp(logits);
  const order = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  return order.slice(0, k).map((id) => ({ id, logprob: logits[id]! - lse }));
}
