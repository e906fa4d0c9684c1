// Bodies shaped exactly as the gateway's proto JSON mapping prints them (int64 as strings, enums
// by name, always_print_primitive_fields).

import type { ModelVersion, UploadSummary } from '../api/types';

export const labelledSummary: UploadSummary = {
  uploadId: '42',
  duplicateOf: '0',
  sha256: 'ab'.repeat(32),
  bytes: '3145728',
  rowsTotal: '20000',
  rowsAccepted: '20000',
  rowsRejected: '0',
  errors: [],
  errorsTruncated: false,
  scored: true,
  modelVersion: '3',
  scoringMessage: '',
  predictedFrauds: '37',
  metrics: {
    rows: '20000',
    positives: '34',
    auprc: 0.8123,
    auprcCiLow: 0.74,
    auprcCiHigh: 0.87,
    rocAuc: 0.9712,
    threshold: 0.5,
    precision: 0.7838,
    recall: 0.8529,
    f1: 0.8169,
    accuracy: 0.9995,
    confusion: { truePositives: '29', falsePositives: '8', trueNegatives: '19958', falseNegatives: '5' },
    precisionAtK: [{ k: 10, precision: 1 }, { k: 50, precision: 0.6 }],
    prCurve: [
      { recall: 0, precision: 1, threshold: 0.99 },
      { recall: 0.5, precision: 0.95, threshold: 0.9 },
      { recall: 0.85, precision: 0.78, threshold: 0.5 },
      { recall: 1, precision: 0.1, threshold: 0.01 },
    ],
    weighted: false,
    singleClass: false,
  },
  topSuspicious: [
    { line: '17', score: 0.91, label: 1, time: 406, amount: 1.0 },
    { line: '1234', score: 0.99, label: 1, time: 7519, amount: 529.0 },
    { line: '88', score: 0.42, label: 0, time: 1001, amount: 12.5 },
  ],
  scoreHistogram: Array.from({ length: 20 }, (_, i) => ({
    lower: i / 20,
    upper: (i + 1) / 20,
    countNormal: String(i === 0 ? 19000 : 40 - i),
    countFraud: String(i >= 15 ? 5 : 0),
    countUnlabelled: '0',
  })),
  report: {
    rows: '20000',
    labelledRows: '20000',
    frauds: '34',
    fraudRate: 0.0017,
    timeMin: 0,
    timeMax: 41000,
    timeMonotonic: true,
    timeDecreases: '0',
    amountMean: 88.35,
    amountMax: 2125.87,
    drift: [
      { feature: 'V1', psi: 0.02, ks: 0.03, flagged: false },
      { feature: 'Amount', psi: 0.41, ks: 0.2, flagged: true },
    ],
    driftFlagged: 1,
  },
  mode: 'UPLOAD_MODE_STRICT',
  elapsedSeconds: 1.73,
  fileName: 'part1.csv',
};

export const rejectedBody = {
  code: 'INVALID_ARGUMENT',
  message: '2 invalid rows; nothing was stored',
  details: {
    summary: {
      uploadId: '0',
      rowsTotal: '5',
      rowsAccepted: '0',
      rowsRejected: '2',
      errors: [
        { line: '3', column: 'V4', columnIndex: 5, reason: "not a number: 'abc'" },
        { line: '6', column: '', columnIndex: 0, reason: 'expected 31 fields, found 12' },
      ],
      errorsTruncated: false,
      scored: false,
      mode: 'UPLOAD_MODE_STRICT',
    },
  },
};

export const unscoredSummary: UploadSummary = {
  uploadId: '43',
  rowsTotal: '100',
  rowsAccepted: '100',
  rowsRejected: '0',
  errors: [],
  scored: false,
  modelVersion: '0',
  scoringMessage: 'no champion model yet: rows were stored but not scored',
  predictedFrauds: '0',
  topSuspicious: [],
  scoreHistogram: [],
  mode: 'UPLOAD_MODE_LENIENT',
  fileName: 'unlabelled.csv',
};

function model(version: string, family: ModelVersion['family'], auprc: number, champion: boolean): ModelVersion {
  return {
    version,
    family,
    artifactUri: `models/${version}`,
    artifactSha256: 'cd'.repeat(32),
    createdAt: `2024-05-0${version}T10:00:00Z`,
    isChampion: champion,
    runId: version,
    manifest: {
      version,
      family,
      threshold: 0.5,
      lineage: { description: `parts 0-${version}`, trainRows: String(100000 * Number(version)), trainFrauds: '180' },
      validationMetrics: { auprc: auprc + 0.02, rocAuc: 0.97, prCurve: [{ recall: 0, precision: 1 }, { recall: 1, precision: 0.2 }] },
      comparisonMetrics: {
        auprc,
        rocAuc: 0.96,
        precision: 0.8,
        recall: 0.7,
        f1: 0.75,
        accuracy: 0.999,
        prCurve: [{ recall: 0, precision: 1 }, { recall: 0.6, precision: 0.8 }, { recall: 1, precision: 0.05 }],
      },
    },
  };
}

export const models: ModelVersion[] = [
  model('1', 'MODEL_FAMILY_LOGREG', 0.71, false),
  model('2', 'MODEL_FAMILY_MLP', 0.78, true),
  model('3', 'MODEL_FAMILY_XGBOOST', 0.83, false),
];
