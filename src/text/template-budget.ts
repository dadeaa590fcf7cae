// A bound on chat-template rendering. @huggingface/jinja renders synchronously and has no limit: a
// template with `range(10**7)` or deeply nested loops blocked a page for over a minute under fuzzing.
// While a bounded render runs, every node the interpreter evaluates (and every loop iteration) costs one
// unit of a budget, and
// range() may not build more items than the budget has left; past it the render throws. The interpreter
// is patched once, on first use (its prototype is the only hook the library offers); outside a bounded
// render the patch only checks a variable.
import { Interpreter, type Template } from '@huggingface/jinja';

/** Far above what real templates need (tri-tiny's ChatML: about 20 evaluations per message). */
export const TEMPLATE_BUDGET = 500_000; // three runaway templates in a row: 1.6 s here (test/unit/text.test.ts)

interface Node { type: string; callee?: { type: string; value?: unknown }; args?: unknown[] }
interface InterpreterInternals {
  evaluate(node: Node, environment: unknown): unknown;
  evaluateCallExpression(node: Node, environment: unknown): unknown;
  evaluateBlock(statements: unknown[], environment: unknown): unknown;
  evaluateArguments(args: unknown[], environment: unknown): [{ value: unknown }[], Map<string, unknown>];
}

let remaining: number | undefined;
let patched = false;

function patchInterpreter(): void {
  if (patched) return;
  patched = true;
  const proto = Interpreter.prototype as unknown as InterpreterInternals;
  const { evaluate, evaluateCallExpression, evaluateBlock } = proto;
  if ([evaluate, evaluateCallExpression, evaluateBlock].some((method) => typeof method !== 'function')) return; // another library version: unbounded
  const spend = () => {
    if (remaining !== undefined && --remaining < 0) throw new Error(`it ran past ${TEMPLATE_BUDGET} steps`);
  };
  proto.evaluate = function (node, environment) {
    spend();
    return evaluate.call(this, node, environment);
  };
  // Each loop iteration runs its body as a block, even an empty one.
  proto.evaluateBlock = function (statements, environment) {
    spend();
    return evaluateBlock.call(this, statements, environment);
  };
  proto.evaluateCallExpression = function (node, environment) {
    if (remaining !== undefined && node.callee?.type === 'Identifier' && node.callee.value === 'range') {
      const numbers = this.evaluateArguments(node.args ?? [], environment)[0].map((arg) => Number(arg.value));
      const [start, stop, step = 1] = numbers.length === 1 ? [0, numbers[0]!] : numbers;
      const items = Math.ceil(((stop ?? 0) - (start ?? 0)) / (step || 1));
      if (!(items <= remaining)) throw new Error(`range() of ${items} items is past its step budget`);
      remaining -= Math.max(0, items);
    }
    return evaluateCallExpression.call(this, node, environment);
  };
}

/** template.render(context), throwing when it takes more than TEMPLATE_BUDGET steps. */
export function renderBounded(template: Template, context: Record<string, unknown>): string {
  patchInterpreter();
  remaining = TEMPLATE_BUDGET;
  try {
    return template.render(context);
  } finally {
    remaining = undefined;
  }
}
