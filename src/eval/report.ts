// The evaluation's report as Markdown tables: what the CLI prints (and what a page can show as text).
import type { CrossLingualReport, PairMetrics, Rate } from './cross-lingual.ts';

const percent = (rate: Rate) => (rate.value === null ? 'n/a' : `${(100 * rate.value).toFixed(1)}%`);
const interval = (rate: Rate) => (rate.interval ? `${(100 * rate.interval[0]).toFixed(1)}–${(100 * rate.interval[1]).toFixed(1)}%` : '');
const cell = (rate: Rate) => `${percent(rate)} (${rate.count}/${rate.of}${rate.interval ? `, 95% ${interval(rate)}` : ''})`;

function row(name: string, metrics: PairMetrics): string {
  return `| ${name} | ${metrics.n} | ${cell(metrics.sourceAccuracy)} | ${cell(metrics.targetAccuracy)} | ${cell(metrics.consistency)} | ${cell(metrics.agreement)} |`;
}

export function formatReport(report: CrossLingualReport): string {
  const [source, target] = report.languages;
  const head = [`| subject | n | ${source} accuracy | ${target} accuracy | consistency ${source}→${target} | agreement |`, '|---|---:|---:|---:|---:|---:|'];
  return [
    ...head,
    row('**all**', report.metrics),
    ...Object.entries(report.bySubject).map(([subject, metrics]) => row(subject, metrics)),
    '',
    `${report.results[0].length * 2} questions in ${report.seconds.toFixed(1)} s (${((report.results[0].length * 2) / report.seconds).toFixed(2)} questions/s), ${report.promptTokens} prompt tokens, ${report.cachedPromptTokens} of them from shared KV pages`,
  ].join('\n');
}
