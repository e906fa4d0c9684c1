// Independent reference computations for checking the metrics the services report: plain
// scikit-learn formulas over (score, label) pairs, and the scored rows of one upload read straight
// from the database.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fraud::testing {

// scikit-learn's average_precision_score, written out plainly: rows ranked by descending score,
// ties grouped into one step. `labels` are 0/1; at least one positive.
double NaiveAveragePrecision(const std::vector<float>& scores, const std::vector<int32_t>& labels);

// ROC-AUC as the probability that a positive outscores a negative (ties count one half); O(n^2).
double NaiveRocAuc(const std::vector<float>& scores, const std::vector<int32_t>& labels);

// The stored predictions of one upload joined with its transactions, in line order.
struct StoredPredictions {
  std::vector<float> scores;      // predictions.score
  std::vector<int32_t> labels;    // transactions.class
  std::vector<bool> decisions;    // predictions.decision
};

// Reads them on a fresh connection to `conninfo` (PgFixture::conninfo()). Throws pqxx exceptions
// (the test fails) when the query fails; an unlabelled row has no class and makes it throw too.
StoredPredictions ReadStoredPredictions(const std::string& conninfo, int64_t upload_id);

}  // namespace fraud::testing
