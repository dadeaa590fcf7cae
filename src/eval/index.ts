// `tri-webgpu/eval`: the cross-lingual multiple-choice evaluation (its own entry, so apps that only chat
// never load the CSV and Parquet readers).
export {
  CHOICES, checkMcqRows, evaluateCrossLingual, formatOf, globalMmluLiteUrl, matchRows, mcqPrompt, pairMetrics, parseMcqFile, predict, rate, scoreQuestion, shotsBySubject,
} from './cross-lingual.ts';
export type { Choice, CrossLingualOptions, CrossLingualReport, DataFormat, McqRow, PairMetrics, QuestionResult, Rate, Scorer } from './cross-lingual.ts';
export { formatReport } from './report.ts';
