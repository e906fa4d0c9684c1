#include "services/storage/explanation_store.h"

#include <algorithm>
#include <bitset>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "services/common/core/status_macros.h"
#include "services/storage/pg_copy.h"
#include "services/storage/validation.h"

namespace fraud::storage {
namespace {

namespace v1 = ::fraud::storage::v1;
using fraud::common::v1::Explanation;
using fraud::common::v1::FeatureContribution;
using fraud::common::v1::ScoreBatch;
using fraud::common::v1::TransactionBatch;
using ::fraud::layout::FeatureName;

// $1 upload, $2 model version; one element per explanation: $3 lines, $4 bias, $5 margin,
// $6 rest, $7 computed_at in us (0 = default); one element per contribution: $8 the 1-based
// explanation it belongs to, $9 feature index, $10 contribution; $11 the default computed_at in
// us (0 = now()). Contributions keep their order (array_agg ORDER BY ordinality). One statement
// whatever the count, so a batch with alerts costs one round trip.
constexpr char kInsertExplanations[] =
    "WITH h AS (SELECT * FROM unnest($3::bigint[], $4::float8[], $5::float8[], $6::float8[],"
    "  $7::bigint[]) WITH ORDINALITY AS h(line, bias, margin, rest, at_us, n)),"
    " c AS (SELECT owner, array_agg(idx ORDER BY k) AS idx, array_agg(contribution ORDER BY k)"
    "  AS contribution FROM unnest($8::int[], $9::smallint[], $10::float8[]) WITH ORDINALITY"
    "  AS c(owner, idx, contribution, k) GROUP BY owner)"
    " INSERT INTO alert_explanations (upload_id, line, model_version, bias, margin, rest,"
    " feature_index, contribution, computed_at)"
    " SELECT $1, h.line, $2, h.bias, h.margin, h.rest, c.idx, c.contribution,"
    " COALESCE(" FRAUD_TS_FROM_US("h.at_us") ", " FRAUD_TS_FROM_US("$11") ", now())"
    " FROM h JOIN c ON c.owner = h.n"
    " ON CONFLICT (upload_id, model_version, line) DO NOTHING";

absl::Status Invalid(int i, absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("explanations[", i, "].", field, ": ", why));
}

absl::Status CheckExplanation(int i, const Explanation& e, const double* row) {
  if (e.top_size() == 0 || e.top_size() > kNumFeatures) {
    return Invalid(i, "explanation.top",
                   absl::StrCat("has ", e.top_size(), " contributions, want 1..", kNumFeatures));
  }
  if (!std::isfinite(e.bias())) return Invalid(i, "explanation.bias", "is not finite");
  if (!std::isfinite(e.margin())) return Invalid(i, "explanation.margin", "is not finite");
  if (!std::isfinite(e.rest())) return Invalid(i, "explanation.rest", "is not finite");
  std::bitset<kNumFeatures> seen;
  double sum = e.bias() + e.rest();
  for (int j = 0; j < e.top_size(); ++j) {
    const FeatureContribution& c = e.top(j);
    const std::string field = absl::StrCat("explanation.top[", j, "]");
    if (c.index() < 0 || c.index() >= kNumFeatures) {
      return Invalid(i, field + ".index",
                     absl::StrCat(c.index(), " is not a feature index 0..", kNumFeatures - 1));
    }
    if (seen[c.index()]) {
      return Invalid(i, field + ".index",
                     absl::StrCat("feature ", FeatureName(c.index()), " is listed twice"));
    }
    seen[c.index()] = true;
    if (!std::isfinite(c.contribution())) {
      return Invalid(i, field + ".contribution", "is not finite");
    }
    // Bit for bit: NaN is excluded by the finite check of the rows.
    if (c.value() != row[c.index()]) {
      return Invalid(i, field + ".value",
                     absl::StrCat(c.value(), " is not the row's ", FeatureName(c.index()), " (",
                                  row[c.index()], ")"));
    }
    sum += c.contribution();
  }
  if (std::abs(sum - e.margin()) >
      kExplanationSumTolerance * std::max(1.0, std::abs(e.margin()))) {
    return Invalid(i, "explanation.margin",
                   absl::StrCat(e.margin(), " is not bias + contributions + rest (", sum, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateRowExplanations(const RowExplanations& explanations,
                                     const TransactionBatch& rows, const ScoreBatch* scores) {
  if (explanations.empty()) return absl::OkStatus();
  if (scores == nullptr) {
    return absl::InvalidArgumentError(
        "explanations: given for rows without scores (explanations belong to alerts)");
  }
  const int64_t n = rows.num_rows();
  std::vector<int> first(static_cast<size_t>(n), -1);
  for (int i = 0; i < explanations.size(); ++i) {
    const v1::RowExplanation& x = explanations.Get(i);
    if (x.row() < 0 || x.row() >= n) {
      return Invalid(i, "row", absl::StrCat(x.row(), " is not a row of the batch (0..", n - 1, ")"));
    }
    int& earlier = first[static_cast<size_t>(x.row())];
    if (earlier >= 0) {
      return Invalid(i, "row",
                     absl::StrCat("row ", x.row(), " is explained twice (also explanations[",
                                  earlier, "])"));
    }
    earlier = i;
    if (!scores->decisions(x.row())) {
      return Invalid(i, "row",
                     absl::StrCat("row ", x.row(),
                                  " is not an alert (decision false); only alerts' explanations "
                                  "are stored"));
    }
    if (!x.has_explanation()) return Invalid(i, "explanation", "missing");
    FRAUD_RETURN_IF_ERROR(CheckExplanation(
        i, x.explanation(), rows.features().data() + static_cast<int64_t>(x.row()) * kNumFeatures));
    if (x.has_computed_at() &&
        (x.computed_at().seconds() <= 0 || x.computed_at().seconds() > 253402300799 ||
         x.computed_at().nanos() < 0 || x.computed_at().nanos() > 999999999)) {
      return Invalid(i, "computed_at", "must be a valid time between 1970 and 9999");
    }
  }
  return absl::OkStatus();
}

int64_t InsertExplanations(pqxx::work& txn, const RowExplanations& explanations, int64_t upload_id,
                           const std::vector<int64_t>& lines, int64_t model_version,
                           int64_t default_computed_at_us) {
  if (explanations.empty()) return 0;
  std::vector<int64_t> line;
  std::vector<double> bias;
  std::vector<double> margin;
  std::vector<double> rest;
  std::vector<int64_t> at_us;
  std::vector<int> owner;
  std::vector<int> index;
  std::vector<double> contribution;
  for (int i = 0; i < explanations.size(); ++i) {
    const v1::RowExplanation& x = explanations.Get(i);
    const Explanation& e = x.explanation();
    line.push_back(lines[static_cast<size_t>(x.row())]);
    bias.push_back(e.bias());
    margin.push_back(e.margin());
    rest.push_back(e.rest());
    at_us.push_back(x.has_computed_at() ? TimestampToUs(x.computed_at()) : 0);
    for (const FeatureContribution& c : e.top()) {
      owner.push_back(i + 1);
      index.push_back(c.index());
      contribution.push_back(c.contribution());
    }
  }
  auto integer = [](int64_t v) { return std::to_string(v); };
  return static_cast<int64_t>(
      txn.exec_params(kInsertExplanations, upload_id, model_version, ArrayLiteral(line, integer),
                      ArrayLiteral(bias, DoubleLiteral), ArrayLiteral(margin, DoubleLiteral),
                      ArrayLiteral(rest, DoubleLiteral), ArrayLiteral(at_us, integer),
                      ArrayLiteral(owner, integer), ArrayLiteral(index, integer),
                      ArrayLiteral(contribution, DoubleLiteral), default_computed_at_us)
          .affected_rows());
}

absl::StatusOr<bool> ReadStoredExplanation(const pqxx::row& row, int first,
                                           const google::protobuf::RepeatedField<double>& features,
                                           Explanation* e, google::protobuf::Timestamp* computed_at) {
  if (row[first].is_null()) return false;
  if (features.size() != kNumFeatures) {
    return absl::InternalError("stored explanation: the row does not have 30 features");
  }
  e->Clear();
  FRAUD_ASSIGN_OR_RETURN(const double bias, ParseDouble(row[first].c_str()));
  FRAUD_ASSIGN_OR_RETURN(const double margin, ParseDouble(row[first + 1].c_str()));
  FRAUD_ASSIGN_OR_RETURN(const double rest, ParseDouble(row[first + 2].c_str()));
  e->set_bias(bias);
  e->set_margin(margin);
  e->set_rest(rest);
  // smallint[] text ("{14,4}") parses as doubles holding small integers.
  google::protobuf::RepeatedField<double> index;
  google::protobuf::RepeatedField<double> contribution;
  FRAUD_RETURN_IF_ERROR(ParseDoubleArray(row[first + 3].c_str(), &index));
  FRAUD_RETURN_IF_ERROR(ParseDoubleArray(row[first + 4].c_str(), &contribution));
  if (index.size() != contribution.size()) {
    return absl::InternalError("stored explanation: index and contribution arrays differ");
  }
  for (int j = 0; j < index.size(); ++j) {
    const int k = static_cast<int>(index.Get(j));
    if (k < 0 || k >= kNumFeatures) {
      return absl::InternalError("stored explanation: feature index out of range");
    }
    FeatureContribution* c = e->add_top();
    c->set_feature(FeatureName(k));
    c->set_index(k);
    c->set_value(features.Get(k));
    c->set_contribution(contribution.Get(j));
  }
  SetTimestampUs(row[first + 5].as<int64_t>(), computed_at);
  return true;
}

}  // namespace fraud::storage
