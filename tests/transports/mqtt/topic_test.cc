#include "transports/mqtt/topic.h"

#include <gtest/gtest.h>

#include <string>

#include "transports/mqtt/utf8.h"

namespace edgehub::transports::mqtt {
namespace {

TEST(TopicNameTest, AcceptsOrdinaryAndIotHubTopics) {
  EXPECT_TRUE(validateTopicName("a").isOk());
  EXPECT_TRUE(validateTopicName("/").isOk());
  EXPECT_TRUE(validateTopicName("devices/dev1/modules/mod1/messages/events/%24.on=out1/").isOk());
  EXPECT_TRUE(validateTopicName("$iothub/twin/GET/?$rid=1").isOk());
  EXPECT_TRUE(validateTopicName(std::string(65535, 'a')).isOk());
}

TEST(TopicNameTest, RejectsWithReason) {
  EXPECT_EQ(validateTopicName("").message(), "invalid topic name: empty");
  EXPECT_EQ(validateTopicName("a/+").message(),
            "invalid topic name: wildcard '+' or '#' in a topic name");
  EXPECT_EQ(validateTopicName("#").code(), core::StatusCode::kInvalidArgument);
  EXPECT_EQ(validateTopicName(std::string(65536, 'a')).message(),
            "invalid topic name: longer than 65535 bytes");
}

TEST(TopicNameTest, FindsWildcardAtEveryPosition) {
  // The scan works eight bytes at a time; cover every offset in and after the word loop.
  for (size_t len = 1; len <= 24; ++len) {
    for (size_t at = 0; at < len; ++at) {
      for (char wildcard : {'+', '#'}) {
        std::string topic(len, 'a');
        topic[at] = wildcard;
        EXPECT_FALSE(validateTopicName(topic).isOk()) << topic;
      }
    }
    // Bytes one off from '+' (0x2B) and '#' (0x23) are not wildcards.
    std::string near(len, '*');
    near[len - 1] = '$';
    EXPECT_TRUE(validateTopicName(near).isOk()) << near;
  }
}

TEST(TopicFilterTest, AcceptsValidFilters) {
  for (const char* f : {"#", "+", "a/#", "+/+", "/+", "+/", "a/+/b", "sport/tennis/+", "$SYS/#",
                        "a//b", "/", "a/+/#"}) {
    EXPECT_TRUE(validateTopicFilter(f).isOk()) << f;
  }
}

TEST(TopicFilterTest, RejectsWithReason) {
  EXPECT_EQ(validateTopicFilter("").message(), "invalid topic filter: empty");
  EXPECT_EQ(validateTopicFilter("a/#/b").message(),
            "invalid topic filter: '#' is not the last character");
  EXPECT_EQ(validateTopicFilter("##").message(),
            "invalid topic filter: '#' is not the last character");
  EXPECT_EQ(validateTopicFilter("a#").message(), "invalid topic filter: '#' is not a whole level");
  EXPECT_EQ(validateTopicFilter("a/b#").message(),
            "invalid topic filter: '#' is not a whole level");
  EXPECT_EQ(validateTopicFilter("a+").message(), "invalid topic filter: '+' is not a whole level");
  EXPECT_EQ(validateTopicFilter("+a").message(), "invalid topic filter: '+' is not a whole level");
  EXPECT_EQ(validateTopicFilter("a/++/b").message(),
            "invalid topic filter: '+' is not a whole level");
}

struct MatchCase {
  const char* filter;
  const char* topic;
  bool matches;
};

TEST(TopicMatchTest, SpecExamplesAndEdgeCases) {
  const MatchCase cases[] = {
      {"sport/tennis/player1/#", "sport/tennis/player1", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
      {"sport/#", "sport", true},
      {"sport/tennis/+", "sport/tennis/player1", true},
      {"sport/tennis/+", "sport/tennis/player1/ranking", false},
      {"sport/+", "sport", false},
      {"sport/+", "sport/", true},
      {"+/+", "/finance", true},
      {"/+", "/finance", true},
      {"+", "/finance", false},
      {"#", "a/b/c", true},
      {"#", "/", true},
      {"a/b", "a/b", true},
      {"a/b", "a/b/", false},
      {"a/b", "a", false},
      {"a", "a/b", false},
      {"a/+/c", "a//c", true},
      {"a/+/c", "a/b/d", false},
      {"a/+/#", "a/b", true},
      {"a/+/#", "a", false},
      {"a/b/#", "a/bc", false},
      // MQTT-4.7.2-1: wildcards at the first level do not match '$' topics ...
      {"#", "$SYS/broker", false},
      {"+/monitor/Clients", "$SYS/monitor/Clients", false},
      {"+", "$iothub", false},
      // ... but explicit '$' levels do.
      {"$SYS/#", "$SYS/broker", true},
      {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
      {"$iothub/twin/res/#", "$iothub/twin/res/200/?$rid=1", true},
      {"a/#", "a/$b", true},
  };
  for (const auto& c : cases) {
    ASSERT_TRUE(validateTopicFilter(c.filter).isOk()) << c.filter;
    ASSERT_TRUE(validateTopicName(c.topic).isOk()) << c.topic;
    EXPECT_EQ(topicMatches(c.filter, c.topic), c.matches) << c.filter << " vs " << c.topic;
  }
}

TEST(Utf8Test, AcceptsWellFormed) {
  EXPECT_TRUE(isValidMqttUtf8(""));
  EXPECT_TRUE(isValidMqttUtf8("plain ascii longer than eight bytes"));
  EXPECT_TRUE(isValidMqttUtf8("caf\xc3\xa9"));                  // U+00E9
  EXPECT_TRUE(isValidMqttUtf8("\xe2\x82\xac"));                  // U+20AC
  EXPECT_TRUE(isValidMqttUtf8("\xf0\x9f\x98\x80 smile"));        // U+1F600
  EXPECT_TRUE(isValidMqttUtf8("\xef\xbb\xbf"));                  // U+FEFF (BOM is allowed)
  EXPECT_TRUE(isValidMqttUtf8("\xf4\x8f\xbf\xbf"));              // U+10FFFF
  EXPECT_TRUE(isValidMqttUtf8("\x01\x1f\x7f"));                  // controls: SHOULD NOT, allowed
}

TEST(Utf8Test, RejectsMalformedNulAndSurrogates) {
  using namespace std::string_view_literals;
  EXPECT_FALSE(isValidMqttUtf8("a\0b"sv));                        // MQTT-1.5.3-2
  EXPECT_FALSE(isValidMqttUtf8("12345678\0abcdefgh"sv));          // NUL inside the word path
  EXPECT_FALSE(isValidMqttUtf8("\xc0\x80"));                      // overlong NUL
  EXPECT_FALSE(isValidMqttUtf8("\xc1\xbf"));                      // overlong
  EXPECT_FALSE(isValidMqttUtf8("\xe0\x80\xaf"));                  // overlong '/'
  EXPECT_FALSE(isValidMqttUtf8("\xed\xa0\x80"));                  // U+D800 surrogate
  EXPECT_FALSE(isValidMqttUtf8("\xed\xbf\xbf"));                  // U+DFFF surrogate
  EXPECT_FALSE(isValidMqttUtf8("\xf4\x90\x80\x80"));              // above U+10FFFF
  EXPECT_FALSE(isValidMqttUtf8("\xf8\x88\x80\x80\x80"));          // 5-byte form
  EXPECT_FALSE(isValidMqttUtf8("\x80"));                          // lone continuation
  EXPECT_FALSE(isValidMqttUtf8("\xc3"));                          // truncated
  EXPECT_FALSE(isValidMqttUtf8("\xe2\x82"));                      // truncated
  EXPECT_FALSE(isValidMqttUtf8("\xc3\x28"));                      // bad continuation
  EXPECT_FALSE(isValidMqttUtf8("\xff"));
}

}  // namespace
}  // namespace edgehub::transports::mqtt
