#include "hub/cli/args.h"

#include <gtest/gtest.h>

namespace edgehub::cli {
namespace {

ArgParser makeParser() {
  ArgParser p("edgehub run", "Runs the hub.", "", 0, 0);
  p.flag("manifest", "FILE", "the manifest", "examples/deployment.json")
      .flag("io-threads", "N", "IO loops")
      .toggle("verbose", "more output");
  return p;
}

TEST(ArgParserTest, ParsesBothValueForms) {
  ArgParser p = makeParser();
  ASSERT_TRUE(p.parse({"--manifest", "m.json", "--io-threads=3", "--verbose"}).isOk());
  EXPECT_EQ(p.value("manifest"), "m.json");
  EXPECT_EQ(p.value("io-threads"), "3");
  EXPECT_TRUE(p.has("verbose"));
  EXPECT_FALSE(p.helpRequested());
}

TEST(ArgParserTest, UnknownFlagIsAnError) {
  ArgParser p = makeParser();
  core::Status s = p.parse({"--manifets", "x"});
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "unknown flag '--manifets' for 'edgehub run'");
}

TEST(ArgParserTest, MissingValueRepeatedFlagAndValueOnToggle) {
  {
    ArgParser p = makeParser();
    EXPECT_EQ(p.parse({"--manifest"}).message(), "flag '--manifest' needs a value (FILE)");
  }
  {
    ArgParser p = makeParser();
    EXPECT_EQ(p.parse({"--manifest", "a", "--manifest=b"}).message(),
              "flag '--manifest' given more than once");
  }
  {
    ArgParser p = makeParser();
    EXPECT_EQ(p.parse({"--verbose=yes"}).message(), "flag '--verbose' takes no value");
  }
  {
    ArgParser p = makeParser();
    EXPECT_FALSE(p.parse({"-x"}).isOk());
  }
}

TEST(ArgParserTest, PositionalsAreBounded) {
  ArgParser p("edgehub route check", "Checks routes.", "MANIFEST", 1, 1);
  EXPECT_EQ(p.parse({}).message(), "'edgehub route check' needs MANIFEST");
  ArgParser q("edgehub route check", "Checks routes.", "MANIFEST", 1, 1);
  EXPECT_EQ(q.parse({"a", "b"}).message(), "unexpected argument 'b' for 'edgehub route check'");
  ArgParser r("edgehub route test", "Runs cases.", "FILE", 1, 1);
  ASSERT_TRUE(r.parse({"--", "-"}).isOk());  // after "--", "-" is a positional
  EXPECT_EQ(r.positionals().at(0), "-");
  ArgParser s("edgehub route test", "Runs cases.", "FILE", 1, 1);
  ASSERT_TRUE(s.parse({"-"}).isOk());  // a lone "-" (stdin) is a positional
  EXPECT_EQ(s.positionals().at(0), "-");
}

TEST(ArgParserTest, HelpWinsOverMissingPositionals) {
  ArgParser p("edgehub route check", "Checks routes.", "MANIFEST", 1, 1);
  ASSERT_TRUE(p.parse({"--help"}).isOk());
  EXPECT_TRUE(p.helpRequested());
  std::string help = p.helpText();
  EXPECT_NE(help.find("Usage: edgehub route check MANIFEST"), std::string::npos);
}

TEST(ArgParserTest, HelpListsFlagsWithDefaults) {
  ArgParser p = makeParser();
  std::string help = p.helpText();
  EXPECT_NE(help.find("--manifest FILE"), std::string::npos);
  EXPECT_NE(help.find("(default: examples/deployment.json)"), std::string::npos);
  EXPECT_NE(help.find("--verbose"), std::string::npos);
}

TEST(ParseUnsignedFlagTest, RangeAndJunk) {
  EXPECT_EQ(parseUnsignedFlag("io-threads", "4", 1, 64).value(), 4u);
  EXPECT_FALSE(parseUnsignedFlag("io-threads", "0", 1, 64).isOk());
  EXPECT_FALSE(parseUnsignedFlag("io-threads", "4x", 1, 64).isOk());
  EXPECT_FALSE(parseUnsignedFlag("io-threads", "", 1, 64).isOk());
  EXPECT_FALSE(parseUnsignedFlag("io-threads", "-1", 1, 64).isOk());
  EXPECT_EQ(parseUnsignedFlag("io-threads", "65", 1, 64).status().message(),
            "invalid value '65' for --io-threads (expected an integer from 1 to 64)");
}

}  // namespace
}  // namespace edgehub::cli
