#include "core/log/logger.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace edgehub::core {
namespace {

class LoggerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Logger::instance().setSinkForTest([this](std::string_view line) { lines_.emplace_back(line); });
    Logger::instance().setFixedTimeForTest(1'764'624'983'123);  // 2025-12-01T21:36:23.123Z
  }
  void TearDown() override {
    Logger::instance().setSinkForTest(nullptr);
    Logger::instance().setFixedTimeForTest(-1);
    Logger::instance().configure(LogLevel::kInfo, LogFormat::kText);
  }
  std::vector<std::string> lines_;
};

TEST_F(LoggerTest, TextLineHasTimestampLevelCategory) {
  Logger::instance().configure(LogLevel::kInfo, LogFormat::kText);
  HUB_LOG_INFO("store", "opened %s with %d files", "/data", 3);
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0], "2025-12-01T21:36:23.123Z info  [store] opened /data with 3 files");
}

TEST_F(LoggerTest, LevelFiltersBeforeFormatting) {
  Logger::instance().configure(LogLevel::kWarn, LogFormat::kText);
  int evaluated = 0;
  auto count = [&] { return ++evaluated; };
  HUB_LOG_INFO("hub", "%d", count());
  HUB_LOG_DEBUG("hub", "%d", count());
  EXPECT_EQ(evaluated, 0);  // arguments of disabled lines are not even evaluated
  HUB_LOG_ERROR("hub", "%d", count());
  EXPECT_EQ(evaluated, 1);
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_NE(lines_[0].find("error [hub] 1"), std::string::npos);
}

TEST_F(LoggerTest, JsonLineIsEscaped) {
  Logger::instance().configure(LogLevel::kDebug, LogFormat::kJson);
  HUB_LOG_DEBUG("mqtt", "client \"%s\" said\n%s", "a\\b", "bye");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0],
            "{\"ts\":\"2025-12-01T21:36:23.123Z\",\"level\":\"debug\",\"cat\":\"mqtt\","
            "\"msg\":\"client \\\"a\\\\b\\\" said\\nbye\"}");
}

TEST_F(LoggerTest, TextLineNeverSplitsAnEvent) {
  Logger::instance().configure(LogLevel::kInfo, LogFormat::kText);
  HUB_LOG_WARN("config", "line one\nline two");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0].find('\n'), std::string::npos);
  EXPECT_NE(lines_[0].find("line one line two"), std::string::npos);
}

TEST_F(LoggerTest, LongMessagesAreNotTruncated) {
  Logger::instance().configure(LogLevel::kInfo, LogFormat::kText);
  std::string big(5000, 'x');
  HUB_LOG_INFO("hub", "%s!", big.c_str());
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_NE(lines_[0].find(big + "!"), std::string::npos);
}

TEST(LogParseTest, LevelsAndFormats) {
  EXPECT_EQ(parseLogLevel("debug").value(), LogLevel::kDebug);
  EXPECT_EQ(parseLogLevel("off").value(), LogLevel::kOff);
  EXPECT_FALSE(parseLogLevel("loud").isOk());
  EXPECT_NE(parseLogLevel("loud").status().message().find("'loud'"), std::string_view::npos);
  EXPECT_EQ(parseLogFormat("json").value(), LogFormat::kJson);
  EXPECT_FALSE(parseLogFormat("xml").isOk());
}

}  // namespace
}  // namespace edgehub::core
