#include "tests/testing/reference_metrics.h"

#include <algorithm>
#include <pqxx/pqxx>

namespace fraud::testing {

double NaiveAveragePrecision(const std::vector<float>& s, const std::vector<int32_t>& y) {
  std::vector<size_t> idx(s.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return s[a] > s[b]; });
  double positives = 0;
  for (int32_t v : y) positives += v;
  double tp = 0, fp = 0, ap = 0, prev_recall = 0;
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j < idx.size() && s[idx[j]] == s[idx[i]]) {
      tp += y[idx[j]];
      fp += 1 - y[idx[j]];
      ++j;
    }
    const double recall = tp / positives;
    ap += (recall - prev_recall) * (tp / (tp + fp));
    prev_recall = recall;
    i = j;
  }
  return ap;
}

double NaiveRocAuc(const std::vector<float>& s, const std::vector<int32_t>& y) {
  double wins = 0, pairs = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (y[i] != 1) continue;
    for (size_t j = 0; j < s.size(); ++j) {
      if (y[j] != 0) continue;
      pairs += 1;
      wins += s[i] > s[j] ? 1.0 : (s[i] == s[j] ? 0.5 : 0.0);
    }
  }
  return wins / pairs;
}

StoredPredictions ReadStoredPredictions(const std::string& conninfo, int64_t upload_id) {
  StoredPredictions out;
  pqxx::connection c(conninfo);
  pqxx::work w(c);
  const pqxx::result rows = w.exec(
      "SELECT p.score, t.class, p.decision FROM predictions p JOIN current_transactions t "
      "USING (upload_id, line) WHERE upload_id = " +
      std::to_string(upload_id) + " ORDER BY line");
  for (const auto& row : rows) {
    out.scores.push_back(row[0].as<float>());
    out.labels.push_back(row[1].as<int32_t>());
    out.decisions.push_back(row[2].as<bool>());
  }
  return out;
}

}  // namespace fraud::testing
