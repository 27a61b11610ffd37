// Timestep-wise density (docs/method.md §4): stage boundaries, rate -> side, the paper's reported ranges.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "diffusion/density_schedule.h"
#include "util/error.h"

using sdit::DensitySchedule;

namespace {

std::vector<int64_t> sides_at(const DensitySchedule& s, const std::vector<int64_t>& ts) {
  std::vector<int64_t> out;
  for (auto t : ts) out.push_back(s.side_at(t));
  return out;
}

}  // namespace

TEST(SideForRate, RoundsSquareRootOfKeptTokens) {
  EXPECT_EQ(sdit::side_for_rate(0.0, 256), 16);
  EXPECT_EQ(sdit::side_for_rate(0.61, 256), 10);  // √99.84
  EXPECT_EQ(sdit::side_for_rate(0.86, 256), 6);   // √35.84
  EXPECT_EQ(sdit::side_for_rate(0.75, 256), 8);   // exactly 64 tokens
  EXPECT_EQ(sdit::side_for_rate(0.90, 1024), 10);
  EXPECT_EQ(sdit::side_for_rate(0.96, 1024), 6);
  EXPECT_EQ(sdit::side_for_rate(0.999, 256), 1);  // clamped: never zero tokens
  EXPECT_EQ(sdit::side_for_rate(-0.5, 256), 16);  // clamped: never more than the dense grid
  EXPECT_THROW(sdit::side_for_rate(0.5, 0), sdit::Error);
}

TEST(ScheduledRate, FollowsEquationFive) {
  const double lo = 0.61, hi = 0.86;
  EXPECT_DOUBLE_EQ(sdit::scheduled_rate(0, 1000, lo, hi), lo);
  EXPECT_DOUBLE_EQ(sdit::scheduled_rate(249, 1000, lo, hi), lo);
  EXPECT_DOUBLE_EQ(sdit::scheduled_rate(250, 1000, lo, hi), lo);  // the linear part starts at r_min
  EXPECT_NEAR(sdit::scheduled_rate(1000, 1000, lo, hi), hi, 1e-12);
  EXPECT_NEAR(sdit::scheduled_rate(625, 1000, lo, hi), 0.5 * (lo + hi), 1e-12);
}

TEST(DensitySchedule, PaperRangesMapToSquareGrids) {
  struct Case {
    std::string spec;
    int64_t grid, first, last;
  };
  const std::vector<Case> cases = {{"range:0.61,0.86", 16, 10, 6},
                                   {"range:0.44,0.61", 16, 12, 10},
                                   {"range:0.61,0.86", 32, 20, 12},
                                   {"range:0.90,0.96", 32, 10, 6}};
  for (const auto& c : cases) {
    const auto s = DensitySchedule::parse(c.spec, c.grid);
    const auto st = s.stage_sides();
    ASSERT_EQ(st.size(), 4u) << c.spec;
    EXPECT_EQ(st.front(), c.first) << c.spec << " grid " << c.grid;
    EXPECT_EQ(st.back(), c.last) << c.spec << " grid " << c.grid;
    EXPECT_EQ(s.side_at(0), c.first);
    EXPECT_EQ(s.side_at(999), c.last);
    // Fewer tokens as t moves towards noise.
    for (size_t k = 1; k < st.size(); ++k) EXPECT_LE(st[k], st[k - 1]) << c.spec;
  }
}

TEST(DensitySchedule, RangeMiddleStagesUseMidpointRates) {
  const auto s = DensitySchedule::parse("range:0.61,0.86", 16);
  const int64_t N = 256;
  EXPECT_EQ(s.stage_sides()[1], sdit::side_for_rate(sdit::scheduled_rate(375.0, 1000, 0.61, 0.86), N));
  EXPECT_EQ(s.stage_sides()[2], sdit::side_for_rate(sdit::scheduled_rate(625.0, 1000, 0.61, 0.86), N));
  EXPECT_EQ(s.stage_sides(), (std::vector<int64_t>{10, 9, 8, 6}));
}

TEST(DensitySchedule, StageBoundaries) {
  const auto s = DensitySchedule::parse("sides:12,10,8,6", 16);
  EXPECT_EQ(sides_at(s, {0, 249, 250, 499, 500, 749, 750, 999}),
            (std::vector<int64_t>{12, 12, 10, 10, 8, 8, 6, 6}));
  EXPECT_EQ(s.stage_of(249), 0);
  EXPECT_EQ(s.stage_of(250), 1);
  EXPECT_EQ(s.stage_of(999), 3);
  EXPECT_EQ(s.stage_range(0), (std::pair<int64_t, int64_t>(0, 250)));
  EXPECT_EQ(s.stage_range(3), (std::pair<int64_t, int64_t>(750, 1000)));
  EXPECT_NEAR(s.rate_at(0), 1.0 - 144.0 / 256.0, 1e-12);
  EXPECT_NEAR(s.rate_at(999), 1.0 - 36.0 / 256.0, 1e-12);
  EXPECT_THROW(s.side_at(1000), sdit::Error);
  EXPECT_THROW(s.side_at(-1), sdit::Error);
  EXPECT_NE(s.describe().find("sides 12,10,8,6 over t in [0,250) [250,500) [500,750) [750,1000)"),
            std::string::npos)
      << s.describe();
}

TEST(DensitySchedule, StageRangesCoverOddT) {
  const auto s = DensitySchedule::parse("sides:4,3,2,1", 4, 10);
  int64_t next = 0;
  for (int k = 0; k < 4; ++k) {
    const auto [a, b] = s.stage_range(k);
    EXPECT_EQ(a, next);
    for (int64_t t = a; t < b; ++t) EXPECT_EQ(s.stage_of(t), k) << "t=" << t;
    next = b;
  }
  EXPECT_EQ(next, 10);
}

TEST(DensitySchedule, PerStepFollowsEquationFiveAtEveryStep) {
  const auto s = DensitySchedule::parse("per-step:0.61,0.86", 16);
  EXPECT_NE(s.describe().find("Eq. 5 at every t"), std::string::npos) << s.describe();
  for (int64_t t = 0; t < 1000; t += 37) {
    const int64_t want = sdit::side_for_rate(sdit::scheduled_rate(static_cast<double>(t), 1000, 0.61, 0.86), 256);
    EXPECT_EQ(s.side_at(t), want) << "t=" << t;
    EXPECT_NEAR(s.rate_at(t), 1.0 - double(want * want) / 256.0, 1e-12);
  }
  EXPECT_EQ(s.side_at(249), 10);
  EXPECT_EQ(s.side_at(999), 6);
  // Monotone: the side never grows with t.
  for (int64_t t = 1; t < 1000; ++t) EXPECT_LE(s.side_at(t), s.side_at(t - 1));
  const auto mids = s.stage_sides();
  EXPECT_EQ(mids[0], 10);
  EXPECT_EQ(mids[1], s.side_at(375));
  EXPECT_EQ(mids[3], s.side_at(875));
}

TEST(DensitySchedule, FixedAndFull) {
  const auto f = DensitySchedule::parse("fixed:8", 16);
  EXPECT_FALSE(f.is_full());
  EXPECT_EQ(sides_at(f, {0, 500, 999}), (std::vector<int64_t>{8, 8, 8}));
  EXPECT_DOUBLE_EQ(f.rate_at(10), 0.75);
  const auto full = DensitySchedule::parse("full", 16);
  EXPECT_TRUE(full.is_full());
  EXPECT_EQ(full.side_at(999), 16);
  EXPECT_DOUBLE_EQ(full.rate_at(0), 0.0);
  EXPECT_EQ(full.stage_sides(), (std::vector<int64_t>{16, 16, 16, 16}));
  EXPECT_EQ(DensitySchedule::parse(" fixed:16 ", 16).side_at(3), 16);
  EXPECT_EQ(DensitySchedule::parse(" fixed:16 ", 16).spec(), "fixed:16");
}

TEST(DensitySchedule, DefaultIsThePapersMainSetting) {
  EXPECT_EQ(std::string(sdit::kDefaultDensity), "range:0.61,0.86");
  EXPECT_EQ(DensitySchedule::parse(sdit::kDefaultDensity, 16).stage_sides(), (std::vector<int64_t>{10, 9, 8, 6}));
  EXPECT_EQ(DensitySchedule::parse(sdit::kDefaultDensity, 32).stage_sides().front(), 20);
  const auto tiny = DensitySchedule::parse(sdit::kDefaultDensity, 4);
  for (int64_t t = 0; t < 1000; t += 111) EXPECT_GE(tiny.side_at(t), 1);
}

TEST(DensitySchedule, MalformedSpecsAreClearErrors) {
  const std::vector<std::string> bad = {
      "",           "dense",          "full:3",          "fixed",          "fixed:",
      "fixed:0",    "fixed:17",       "fixed:8,8",       "fixed:eight",    "fixed:8x",
      "range",      "range:0.61",     "range:0.61,",     "range:0.86,0.61", "range:0.61,1.0",
      "range:-0.1,0.5", "range:a,b",  "range:0.1,0.2,0.3", "sides:10,8,7",  "sides:10,8,7,6,5",
      "sides:10,8,7,0", "sides:17,8,7,6", "per-step:0.9,0.5", "per-step:nan,0.5", "range:0.5,inf"};
  for (const auto& spec : bad) {
    try {
      DensitySchedule::parse(spec, 16);
      ADD_FAILURE() << "accepted '" << spec << "'";
    } catch (const sdit::Error& e) {
      EXPECT_FALSE(std::string(e.what()).empty());
    }
  }
  try {
    DensitySchedule::parse("fixed:17", 16);
  } catch (const sdit::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[1, 16]"), std::string::npos) << e.what();
  }
  try {
    DensitySchedule::parse("bogus:1", 16);
  } catch (const sdit::Error& e) {
    EXPECT_NE(std::string(e.what()).find("range:RMIN,RMAX"), std::string::npos) << e.what();
  }
  EXPECT_THROW(DensitySchedule::parse("full", 0), sdit::Error);
  EXPECT_THROW(DensitySchedule::parse("full", 16, 3), sdit::Error);
}

TEST(DensitySchedule, DescribeNamesSidesAndIntervals) {
  const auto s = DensitySchedule::parse("range:0.61,0.86", 16);
  EXPECT_EQ(s.describe(), "range:0.61,0.86 -> sides 10,9,8,6 over t in [0,250) [250,500) [500,750) [750,1000)");
  EXPECT_NE(DensitySchedule::parse("full", 16).describe().find("16x16"), std::string::npos);
  EXPECT_NE(DensitySchedule::parse("fixed:8", 16).describe().find("64 of 256"), std::string::npos);
}
