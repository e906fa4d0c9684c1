// fraudctl's dispatcher, its flag parser and the generate command, run in-process.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "clients/cli/commands.h"
#include "clients/cli/flag_parser.h"
#include "clients/cli/summary_printer.h"
#include "services/common/csv/synthetic_generator.h"
#include "tests/testing/status_matchers.h"

namespace fraud::cli {
namespace {

using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

struct CliRun {
  int code;
  std::string out;
  std::string err;
};

CliRun Fraudctl(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  CommandIo io{out, err};
  const int code = RunFraudctl(args, io);
  return {code, out.str(), err.str()};
}

TEST(FraudctlTest, HelpListsEveryCommand) {
  for (const auto& args : {std::vector<std::string>{"help"}, std::vector<std::string>{"--help"}}) {
    const CliRun r = Fraudctl(args);
    EXPECT_EQ(r.code, kExitOk);
    for (const Command& c : Commands()) EXPECT_THAT(r.out, HasSubstr(std::string(c.name)));
  }
}

TEST(FraudctlTest, NoCommandOrAnUnknownOneIsAUsageError) {
  CliRun r = Fraudctl({});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("Usage: fraudctl COMMAND"));
  r = Fraudctl({"frobnicate"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("unknown command 'frobnicate'"));
  r = Fraudctl({"help", "frobnicate"});
  EXPECT_EQ(r.code, kExitUsage);
}

TEST(FraudctlTest, EveryCommandAnswersHelpWithExitZero) {
  for (const Command& c : Commands()) {
    SCOPED_TRACE(std::string(c.name));
    CliRun r = Fraudctl({std::string(c.name), "--help"});
    EXPECT_EQ(r.code, kExitOk);
    EXPECT_FALSE(r.out.empty());
    r = Fraudctl({"help", std::string(c.name)});
    EXPECT_EQ(r.code, kExitOk);
  }
}

TEST(FraudctlTest, GenerateWritesTheSameBytesAsTheLibrary) {
  const CliRun r = Fraudctl({"generate", "--rows", "120", "--seed", "5", "--fraud-rate=0.05"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  csv::GeneratorOptions o;
  o.rows = 120;
  o.seed = 5;
  o.fraud_rate = 0.05;
  std::ostringstream expected;
  ASSERT_THAT(csv::WriteSyntheticCsv(o, expected), IsOk());
  EXPECT_EQ(r.out, expected.str());
  EXPECT_TRUE(r.err.empty());
}

TEST(FraudctlTest, GenerateHonoursNoLabelsPlainNoHeaderAndTimeOffset) {
  CliRun r = Fraudctl({"generate", "--rows", "3", "--no-labels", "--plain"});
  ASSERT_EQ(r.code, kExitOk);
  EXPECT_THAT(r.out, StartsWith("Time,V1,"));
  EXPECT_THAT(r.out.substr(0, r.out.find('\n')), ::testing::EndsWith(",Amount"));
  r = Fraudctl({"generate", "--rows", "3", "--no-header", "--time-offset", "172800"});
  ASSERT_EQ(r.code, kExitOk);
  std::istringstream lines(r.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    ++n;
    const long time = std::stol(line.substr(0, line.find(',')));
    EXPECT_GE(time, 172800);
    EXPECT_LE(time, 172800 + csv::kTimeSpanSeconds);
  }
  EXPECT_EQ(n, 3);
}

TEST(FraudctlTest, GenerateToAFileWritesItAtomically) {
  char path[] = "/tmp/fraudctl-test-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const CliRun r = Fraudctl({"generate", "--rows", "10", "--out", path});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_TRUE(r.out.empty());
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), Fraudctl({"generate", "--rows", "10"}).out);
  std::remove(path);
  std::ifstream tmp(std::string(path) + ".tmp");
  EXPECT_FALSE(tmp.good());
}

TEST(FraudctlTest, GenerateFailsCleanlyWhenTheFileCannotBeWritten) {
  const CliRun r = Fraudctl({"generate", "--rows", "10", "--out", "/nonexistent-dir/x.csv"});
  EXPECT_EQ(r.code, kExitFailure);
  EXPECT_THAT(r.err, HasSubstr("cannot open"));
}

TEST(FraudctlTest, GenerateRejectsBadArguments) {
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"generate", "--rows", "x"},
                                             {"generate", "--rows", "-5"},
                                             {"generate", "--rows"},
                                             {"generate", "--fraud-rate", "2"},
                                             {"generate", "--fraud-rate", "nan"},
                                             {"generate", "--seed", "-1"},
                                             {"generate", "--time-offset", "-1"},
                                             {"generate", "--colour", "red"},
                                             {"generate", "stray"},
                                             {"generate", "--rows", "1", "--rows", "2"},
                                             {"generate", "-r", "5"}}) {
    SCOPED_TRACE(::testing::PrintToString(args));
    const CliRun r = Fraudctl(args);
    EXPECT_EQ(r.code, kExitUsage);
    EXPECT_TRUE(r.out.empty());
    EXPECT_THAT(r.err, HasSubstr("Usage: fraudctl generate"));
  }
}

TEST(SummaryPrinterTest, PrintsTheModelsAlertBudgetsOnTheUpload) {
  ingest::v1::UploadSummary s;
  s.set_upload_id(3);
  s.set_rows_total(20000);
  s.set_rows_accepted(20000);
  s.set_scored(true);
  s.set_model_version(4);
  ingest::v1::BudgetOutcome* labelled = s.add_budgets();
  labelled->set_alert_fraction(0.005);
  labelled->set_threshold(0.8125);
  labelled->set_alerts(97);
  labelled->set_alert_rate(0.00485);
  labelled->set_labelled(true);
  labelled->set_precision(0.625);
  labelled->set_recall(0.75);
  labelled->set_validation_precision(0.5);
  labelled->set_validation_recall(0.8);
  std::ostringstream out;
  PrintSummary(s, SummaryKind::kUpload, out);
  EXPECT_THAT(out.str(), HasSubstr("Alert budgets of model v4 on this upload"));
  EXPECT_THAT(out.str(), HasSubstr("0.500%"));
  EXPECT_THAT(out.str(), HasSubstr("0.8125"));
  EXPECT_THAT(out.str(), HasSubstr("97 (0.485%)"));
  EXPECT_THAT(out.str(), HasSubstr("0.625 / 0.750"));
  EXPECT_THAT(out.str(), HasSubstr("0.500 / 0.800"));
  labelled->set_labelled(false);
  std::ostringstream unlabelled;
  PrintSummary(s, SummaryKind::kUpload, unlabelled);
  EXPECT_THAT(unlabelled.str(), HasSubstr("unlabelled"));
  s.clear_budgets();
  std::ostringstream none;
  PrintSummary(s, SummaryKind::kUpload, none);
  EXPECT_THAT(none.str(), Not(HasSubstr("Alert budgets")));
}

TEST(FlagSetTest, ParsesEveryFlagTypeInBothSpellings) {
  std::string s = "d";
  int64_t i = 1;
  uint64_t u = 2;
  double d = 3;
  bool b = false, c = true;
  FlagSet flags("t", "usage");
  flags.String("name", &s, "a string");
  flags.Int64("count", &i, "an int");
  flags.Uint64("seed", &u, "a uint");
  flags.Double("rate", &d, "a double");
  flags.Bool("on", &b, "a bool");
  flags.Bool("keep", &c, "another bool");
  ASSERT_THAT(flags.Parse({"--name=x y", "pos1", "--count", "-7", "--seed=9", "--rate", "0.25",
                           "--on", "--keep=false", "--", "--not-a-flag"}),
              IsOk());
  EXPECT_EQ(s, "x y");
  EXPECT_EQ(i, -7);
  EXPECT_EQ(u, 9u);
  EXPECT_EQ(d, 0.25);
  EXPECT_TRUE(b);
  EXPECT_FALSE(c);
  EXPECT_THAT(flags.positional(), ::testing::ElementsAre("pos1", "--not-a-flag"));
  EXPECT_TRUE(flags.WasSet("rate"));
  EXPECT_FALSE(flags.help_requested());
}

TEST(FlagSetTest, ReportsUnknownRepeatedAndMalformedFlags) {
  int64_t i = 0;
  bool b = false;
  auto parse = [&](std::vector<std::string> args) {
    FlagSet flags("cmd", "usage");
    flags.Int64("n", &i, "n");
    flags.Bool("b", &b, "b");
    return flags.Parse(args);
  };
  EXPECT_THAT(parse({"--m", "1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cmd: unknown flag --m")));
  EXPECT_THAT(parse({"--n", "1", "--n=2"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("given twice")));
  EXPECT_THAT(parse({"--n", "1x"}), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("--n needs an integer, got '1x'")));
  EXPECT_THAT(parse({"--n"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs a value")));
  EXPECT_THAT(parse({"--b=maybe"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(parse({"-n"}), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(FlagSetTest, UsageShowsFlagsWithTheirDefaults) {
  int64_t rows = 42;
  FlagSet flags("generate", "Usage: fraudctl generate");
  flags.Int64("rows", &rows, "data rows");
  ASSERT_THAT(flags.Parse({"-h"}), IsOk());
  EXPECT_TRUE(flags.help_requested());
  const std::string usage = flags.Usage();
  EXPECT_THAT(usage, StartsWith("Usage: fraudctl generate\n"));
  EXPECT_THAT(usage, HasSubstr("--rows VALUE"));
  EXPECT_THAT(usage, HasSubstr("data rows (default 42)"));
  EXPECT_THAT(usage, HasSubstr("--help"));
}

}  // namespace
}  // namespace fraud::cli
