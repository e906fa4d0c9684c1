// TypeScript shapes of the gateway's JSON bodies: the proto3 JSON mapping of the messages in
// proto/fraud/**/*.proto (lowerCamelCase names, int64 as decimal strings, enums by name,
// google.protobuf.Timestamp as RFC 3339 strings). Every field is optional because the mapping
// omits unset message fields and a server may omit defaults; read them through the helpers in
// format.ts (num, int64, ...), which also accept plain numbers.

/** An int64/uint64 value: proto JSON prints it as a decimal string; numbers are accepted too. */
export type Int64 = string | number;
/** A double: a number, or "NaN" / "Infinity" / "-Infinity" as proto JSON prints non-finite values. */
export type Double = number | string;
/** google.protobuf.Timestamp as RFC 3339. */
export type Timestamp = string;

// ---- fraud.common.v1 ----

export type ModelFamily =
  | 'MODEL_FAMILY_UNSPECIFIED'
  | 'MODEL_FAMILY_LOGREG'
  | 'MODEL_FAMILY_MLP'
  | 'MODEL_FAMILY_XGBOOST'
  | 'MODEL_FAMILY_RANDOM_FOREST'
  | 'MODEL_FAMILY_ENSEMBLE';

export interface RowError {
  line?: Int64;
  column?: string;
  columnIndex?: number;
  reason?: string;
}

export interface ConfusionMatrix {
  truePositives?: Int64;
  falsePositives?: Int64;
  trueNegatives?: Int64;
  falseNegatives?: Int64;
}

export interface PrecisionAtK {
  k?: number;
  precision?: Double;
}

export interface PrPoint {
  recall?: Double;
  precision?: Double;
  threshold?: Double;
}

export interface ScoreBin {
  lower?: Double;
  upper?: Double;
  countNormal?: Int64;
  countFraud?: Int64;
  countUnlabelled?: Int64;
}

export interface ClassificationMetrics {
  rows?: Int64;
  positives?: Int64;
  auprc?: Double;
  auprcCiLow?: Double;
  auprcCiHigh?: Double;
  rocAuc?: Double;
  threshold?: Double;
  precision?: Double;
  recall?: Double;
  f1?: Double;
  accuracy?: Double;
  confusion?: ConfusionMatrix;
  precisionAtK?: PrecisionAtK[];
  prCurve?: PrPoint[];
  weighted?: boolean;
  singleClass?: boolean;
}

export interface DataLineage {
  uploadIds?: Int64[];
  timeMin?: Double;
  timeMax?: Double;
  trainRows?: Int64;
  trainFrauds?: Int64;
  validationRows?: Int64;
  validationFrauds?: Int64;
  description?: string;
}

export interface ModelManifest {
  version?: Int64;
  family?: ModelFamily;
  featureNames?: string[];
  threshold?: Double;
  params?: Record<string, string>;
  lineage?: DataLineage;
  validationMetrics?: ClassificationMetrics;
  comparisonMetrics?: ClassificationMetrics;
  createdAt?: Timestamp;
  runId?: Int64;
  budgetThresholds?: BudgetThreshold[];
}

export interface BudgetThreshold {
  alertFraction?: Double;
  threshold?: Double;
  precision?: Double;
  recall?: Double;
  alerts?: Int64;
}

// ---- fraud.storage.v1 ----

export type UploadMode = 'UPLOAD_MODE_UNSPECIFIED' | 'UPLOAD_MODE_STRICT' | 'UPLOAD_MODE_LENIENT';

export interface Upload {
  id?: Int64;
  sha256?: string;
  fileName?: string;
  mode?: UploadMode;
  status?: string;
  receivedAt?: Timestamp;
  committedAt?: Timestamp;
  rows?: Int64;
  rowsRejected?: Int64;
  labelledRows?: Int64;
  frauds?: Int64;
  timeMin?: Double;
  timeMax?: Double;
  modelVersion?: Int64;
  bytes?: Int64;
  summaryJson?: string;
}

export interface ListUploadsResponse {
  uploads?: Upload[];
  nextBeforeId?: Int64;
}

export interface GetUploadResponse {
  upload?: Upload;
}

/** Where a row's reasons come from: stored with the alert by the version that flagged it, or
 * computed now by the serving model (none was stored). */
export type ExplanationSource = 'stored' | 'computed';

export interface Prediction {
  uploadId?: Int64;
  line?: Int64;
  modelVersion?: Int64;
  score?: Double;
  decision?: boolean;
  label?: number;
  features?: Double[];
  /** Alerts only: the reasons (stored, else computed by the gateway). */
  explanation?: Explanation;
  explanationComputedAt?: string;
  explanationSource?: ExplanationSource;
  explanationModelVersion?: Int64;
}

export interface ListPredictionsResponse {
  predictions?: Prediction[];
  total?: Int64;
  /** The serving version that computed the reasons not stored. */
  explanationModelVersion?: Int64;
  /** Why alerts without stored reasons carry none. */
  explanationError?: string;
}

export interface ModelVersion {
  version?: Int64;
  family?: ModelFamily;
  manifest?: ModelManifest;
  artifactUri?: string;
  artifactSha256?: string;
  createdAt?: Timestamp;
  isChampion?: boolean;
  runId?: Int64;
}

export interface ListModelsResponse {
  models?: ModelVersion[];
}

export interface GetModelResponse {
  model?: ModelVersion;
}

export interface GetChampionResponse {
  model?: ModelVersion;
  since?: Timestamp;
}

export interface ChampionChange {
  id?: Int64;
  version?: Int64;
  previousVersion?: Int64;
  reason?: string;
  actor?: string;
  changedAt?: Timestamp;
}

export interface ListChampionHistoryResponse {
  changes?: ChampionChange[];
}

/** fraud.storage.v1.RealisedMetrics: one model version in one period, on the labels known now. */
export interface RealisedMetrics {
  modelVersion?: Int64;
  /** Day number (floor(Time / 86400)) or upload id. */
  period?: Int64;
  rowsScored?: Int64;
  rowsLabelled?: Int64;
  unlabelledShare?: number;
  alerts?: Int64;
  alertsLabelled?: Int64;
  trueAlerts?: Int64;
  frauds?: Int64;
  precision?: number;
  recall?: number;
  auprc?: number;
  precisionAtK?: number;
  topKLabelled?: Int64;
  timeMin?: number;
  timeMax?: number;
}

export type RealisedPeriod = 'REALISED_PERIOD_UNSPECIFIED' | 'REALISED_PERIOD_DAY' | 'REALISED_PERIOD_UPLOAD';

export interface GetRealisedMetricsResponse {
  metrics?: RealisedMetrics[];
  k?: number;
  by?: RealisedPeriod;
}

export type RunStatus =
  | 'RUN_STATUS_UNSPECIFIED'
  | 'RUN_STATUS_QUEUED'
  | 'RUN_STATUS_RUNNING'
  | 'RUN_STATUS_SUCCEEDED'
  | 'RUN_STATUS_FAILED'
  | 'RUN_STATUS_CANCELLED';

export interface EpochPoint {
  epoch?: number;
  trainLoss?: Double;
  validationLoss?: Double;
  validationAuprc?: Double;
}

export interface PairedComparison {
  difference?: Double;
  ciLow?: Double;
  ciHigh?: Double;
  shareBetter?: Double;
  resamples?: number;
}

export interface BacktestBlock {
  timeMin?: Double;
  timeMax?: Double;
  rows?: Int64;
  frauds?: Int64;
  trainRows?: Int64;
  normalSampleRate?: Double;
  auprc?: Double;
  error?: string;
}

export interface Candidate {
  name?: string;
  family?: ModelFamily;
  params?: Record<string, string>;
  validationMetrics?: ClassificationMetrics;
  curve?: EpochPoint[];
  trainSeconds?: Double;
  peakRssBytes?: Int64;
  selected?: boolean;
  backtest?: BacktestBlock[];
  backtestMeanAuprc?: Double;
  backtestWorstAuprc?: Double;
  refitOf?: number;
  isRefit?: boolean;
}

export interface RunProgress {
  phase?: string;
  candidate?: string;
  candidatesDone?: number;
  candidatesTotal?: number;
  epoch?: number;
  loss?: Double;
  metric?: Double;
  message?: string;
}

export interface TrainingRun {
  id?: Int64;
  status?: RunStatus;
  trigger?: string;
  params?: Record<string, string>;
  createdAt?: Timestamp;
  startedAt?: Timestamp;
  finishedAt?: Timestamp;
  progress?: RunProgress;
  candidates?: Candidate[];
  lineage?: DataLineage;
  modelVersion?: Int64;
  promoted?: boolean;
  challengerComparison?: ClassificationMetrics;
  championComparison?: ClassificationMetrics;
  comparisonDifference?: PairedComparison;
  championVersionBefore?: Int64;
  message?: string;
  /** The gate's evidence on backtest blocks newer than the champion's training rows. */
  backtestGate?: BacktestGate;
}

/** Challenger's fold models vs the champion on the newer backtest blocks (storage.v1.BacktestGate). */
export interface BacktestGate {
  championVersion?: Int64;
  blocks?: number;
  challengerMeanAuprc?: Double;
  championMeanAuprc?: Double;
  difference?: PairedComparison;
}

// ---- fraud.ingest.v1 ----

export interface SuspiciousRow {
  line?: Int64;
  score?: Double;
  label?: number;
  time?: Double;
  amount?: Double;
}

export interface FeatureDrift {
  feature?: string;
  psi?: Double;
  ks?: Double;
  flagged?: boolean;
  judged?: boolean;
}

export interface DataReport {
  rows?: Int64;
  labelledRows?: Int64;
  frauds?: Int64;
  fraudRate?: Double;
  timeMin?: Double;
  timeMax?: Double;
  timeMonotonic?: boolean;
  timeDecreases?: Int64;
  amountMean?: Double;
  amountMax?: Double;
  drift?: FeatureDrift[];
  driftFlagged?: number;
  driftMinRows?: Int64;
  driftNote?: string;
}

export interface UploadSummary {
  uploadId?: Int64;
  duplicateOf?: Int64;
  sha256?: string;
  bytes?: Int64;
  rowsTotal?: Int64;
  rowsAccepted?: Int64;
  rowsRejected?: Int64;
  errors?: RowError[];
  errorsTruncated?: boolean;
  scored?: boolean;
  modelVersion?: Int64;
  scoringMessage?: string;
  predictedFrauds?: Int64;
  metrics?: ClassificationMetrics;
  topSuspicious?: SuspiciousRow[];
  scoreHistogram?: ScoreBin[];
  report?: DataReport;
  mode?: UploadMode;
  elapsedSeconds?: Double;
  fileName?: string;
  /** The scoring model's alert budgets applied to this upload. */
  budgets?: BudgetOutcome[];
}

/** One alert budget of the scoring model on an upload (fraud.ingest.v1.BudgetOutcome). */
export interface BudgetOutcome {
  alertFraction?: Double;
  threshold?: Double;
  validationPrecision?: Double;
  validationRecall?: Double;
  alerts?: Int64;
  alertRate?: Double;
  labelled?: boolean;
  trueAlerts?: Int64;
  precision?: Double;
  recall?: Double;
}

// ---- fraud.training.v1 ----

export interface StartRunRequest {
  families?: string[];
  trainUploadIds?: Int64[];
  comparisonUploadIds?: Int64[];
  comparisonTimeMin?: number;
  comparisonTimeMax?: number;
  trainTimeMax?: number;
  validationFraction?: number;
  promotionMargin?: number;
  noPromote?: boolean;
  params?: Record<string, string>;
  description?: string;
  trigger?: string;
}

export interface RunResponse {
  run?: TrainingRun;
}

export interface ListRunsResponse {
  runs?: TrainingRun[];
  nextBeforeId?: Int64;
}

export interface PromoteResponse {
  change?: ChampionChange;
  reloaded?: boolean;
  message?: string;
}

// ---- operating points (issue 17 item 4) ----

export type OperatingPointKind =
  | 'OPERATING_POINT_KIND_UNSPECIFIED'
  | 'OPERATING_POINT_KIND_THRESHOLD'
  | 'OPERATING_POINT_KIND_ALERTS_PER_DAY'
  | 'OPERATING_POINT_KIND_FRACTION';

/** One audited operating-point change of a version (storage.v1 OperatingPoint). */
export interface OperatingPoint {
  id?: Int64;
  version?: Int64;
  kind?: OperatingPointKind;
  requestedValue?: Double;
  threshold?: Double;
  previousThreshold?: Double;
  reason?: string;
  actor?: string;
  changedAt?: Timestamp;
  expectedAlertsPerDay?: Double;
  expectedPrecision?: Double;
  expectedRecall?: Double;
  evaluatedRows?: Int64;
  evaluatedDays?: Double;
}

export interface GetOperatingPointResponse {
  point?: OperatingPoint;
  manifestThreshold?: Double;
  threshold?: Double;
  history?: OperatingPoint[];
}

/** Expected figures at one threshold on the latest labelled data (training.v1 WhatIfPoint). */
export interface WhatIfPoint {
  threshold?: Double;
  alerts?: Int64;
  alertsPerDay?: Double;
  alertFraction?: Double;
  trueAlerts?: Int64;
  precision?: Double;
  recall?: Double;
}

export interface WhatIfResponse {
  version?: Int64;
  rows?: Int64;
  frauds?: Int64;
  days?: Double;
  firstDay?: Int64;
  lastDay?: Int64;
  truncated?: boolean;
  dataGeneration?: Int64;
  curve?: WhatIfPoint[];
  current?: WhatIfPoint;
  currentSource?: string;
  operatingPoint?: OperatingPoint;
  manifest?: WhatIfPoint;
  budgets?: { validation?: BudgetThreshold; latest?: WhatIfPoint }[];
  candidate?: WhatIfPoint;
  cached?: boolean;
  seconds?: Double;
}

export interface SetOperatingPointResponse {
  point?: OperatingPoint;
  reloaded?: boolean;
  message?: string;
}

// ---- inference.v1 ----

export interface InferenceModelResponse {
  version?: Int64;
  manifest?: ModelManifest;
  loadedAt?: Timestamp;
  artifactPath?: string;
}

// ---- gateway aggregates ----

/** GET /api/v1/health (and /healthz). */
export interface HealthResponse {
  status?: 'ok' | 'degraded' | string;
  services?: Record<string, string>;
}

/** One service in GET /api/v1/monitoring. */
export interface MonitoredService {
  name?: string;
  healthy?: boolean;
  /** Prometheus samples by name, for example "fraud_rpc_requests_total": 12. */
  metrics?: Record<string, Double>;
}

/** One upload row in GET /api/v1/monitoring. */
export interface MonitoringUpload {
  id?: Int64;
  fileName?: string;
  rows?: Int64;
  frauds?: Int64;
  predictedFrauds?: Int64;
  /** When the upload was received (RFC 3339); `receivedAt` is accepted too. */
  time?: Timestamp;
  receivedAt?: Timestamp;
  modelVersion?: Int64;
}

/** GET /api/v1/monitoring. */
export interface MonitoringResponse {
  services?: MonitoredService[];
  champion?: ModelVersion;
  /** When the champion became champion (optional; the UI falls back to the champion history). */
  championSince?: Timestamp;
  uploads?: MonitoringUpload[];
}

/** Error body of every non-2xx answer. */
export interface ErrorBody {
  code?: string;
  message?: string;
  details?: { summary?: UploadSummary; [key: string]: unknown };
}

/** fraud.common.v1.FeatureContribution: one feature's signed part in a prediction. */
export interface FeatureContribution {
  feature?: string;
  index?: number;
  value?: Double;
  /** Contribution to the log-odds of fraud: > 0 pushes towards fraud. */
  contribution?: Double;
}

/** fraud.common.v1.Explanation: margin = bias + sum(top) + rest (log-odds). */
export interface Explanation {
  top?: FeatureContribution[];
  bias?: Double;
  margin?: Double;
  rest?: Double;
}

/** fraud.common.v1.ScoreBatch. */
export interface ScoreBatch {
  scores?: Double[];
  decisions?: boolean[];
  modelVersion?: Int64;
  threshold?: Double;
}

/** fraud.inference.v1.PredictResponse (POST /score). */
export interface PredictResponse {
  scores?: ScoreBatch;
  /** With explain: one per row. */
  explanations?: Explanation[];
}

// ---- review queue (GET /review/queue, POST /review) ----

/** fraud.common.v1.FeatureReference: a feature's training distribution as quantile bins. */
export interface FeatureReference {
  feature?: string;
  /** Ascending bin edges; bins are (-inf, e0], (e0, e1], ..., (e_last, +inf). */
  edges?: Double[];
  /** Share of training rows per bin (edges.length + 1 entries). */
  fractions?: Double[];
}

/** fraud.storage.v1.ReviewItem plus the gateway's explanation. */
export interface ReviewItem {
  uploadId?: Int64;
  line?: Int64;
  transactionId?: string;
  modelVersion?: Int64;
  score?: Double;
  time?: Double;
  amount?: Double;
  /** Time, V1..V28, Amount. */
  features?: Double[];
  /** 0, 1, or -1 when unlabelled. */
  currentLabel?: number;
  /** The reasons stored with the alert, else the top 5 computed by the serving model (absent when
   * none was stored and inference could not explain the page). */
  explanation?: Explanation;
  explanationComputedAt?: string;
  explanationSource?: ExplanationSource;
  /** The version whose explanation it is. */
  explanationModelVersion?: Int64;
}

/** GET /review/queue. */
export interface ReviewQueueResponse {
  items?: ReviewItem[];
  nextPageToken?: string;
  explanationModelVersion?: Int64;
  explanationError?: string;
  population?: { modelVersion?: Int64; features?: FeatureReference[] };
}

export type ReviewDispositionChoice = 'fraud' | 'not_fraud' | 'unsure';

/** POST /review body: upload + line, or transactionId. */
export interface SubmitReviewRequest {
  uploadId?: string;
  line?: string;
  transactionId?: string;
  disposition: ReviewDispositionChoice;
  note?: string;
}

/** fraud.storage.v1.SubmitReviewResponse. */
export interface SubmitReviewResponse {
  uploadId?: Int64;
  line?: Int64;
  reviewId?: Int64;
  labelOutcome?: string;
  currentLabel?: number;
}
