// Structural validation of an XGBoost JSON model before XGBoost sees it.
//
// XGBoost trusts the model it loads: a tree whose child indices point past its node array, a
// split on a feature the input does not have, a cycle, or a tree count that disagrees with the
// tree list makes prediction read out of bounds (a fuzzed artifact with consistent checksums
// crashed the loader in xgboost::predictor::PredictByAllTrees). The checksum only proves the
// bytes are the ones the manifest names, not that they are sane, so every artifact's model.json
// passes through here first.
//
//   absl::StatusOr<std::string> canonical = CanonicalXgboostModel(bytes, kNumFeatures);
//   if (!canonical.ok()) return canonical.status();      // DataLoss naming the defect
//   XGBoosterLoadModelFromBuffer(booster, canonical->data(), canonical->size());
//
// The returned text is the validated document serialised again, so XGBoost parses exactly what
// was checked (no duplicate keys or number spellings that two JSON parsers could read apart).
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fraud::model {

// Accepts only what our trainer writes with XGBoost 1.7: a "gbtree" booster for
// "binary:logistic" on exactly `num_features` numerical features, one output group, no
// categorical splits, no leaf vectors. Every tree must be a proper binary tree over its node
// arrays: consistent lengths, child indices in range, every node reached at most once from the
// root (no cycles, no shared children), parents matching children, split features in
// [0, num_features), finite split conditions and leaf values; num_trees, tree_info and the tree
// ids must agree; base_score must be a finite probability in (0, 1). Unknown keys are refused.
// Returns the canonical JSON on success, DataLoss with a message such as
// "model.json: tree 2 node 5: right child 9 is outside the tree's 7 nodes" otherwise.
// Pure function; thread-safe.
absl::StatusOr<std::string> CanonicalXgboostModel(absl::string_view bytes, size_t num_features);

}  // namespace fraud::model
