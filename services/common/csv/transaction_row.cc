#include "services/common/csv/transaction_row.h"

namespace fraud::csv {

int FeatureIndex(std::string_view name) {
  for (int i = 0; i < kNumFeatures; ++i) {
    if (kFeatureNames[i] == name) return i;
  }
  return -1;
}

}  // namespace fraud::csv
