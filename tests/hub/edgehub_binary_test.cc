// End-to-end tests of the `edgehub` binary: help, usage errors, and `run` listening and stopping
// cleanly on SIGINT/SIGTERM.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/subprocess.h"

namespace edgehub {
namespace {

using namespace std::chrono_literals;
using testing::Subprocess;

const std::string kBinary = std::string(HUB_BINARY_DIR) + "/edgehub";
const std::string kManifest = std::string(HUB_SOURCE_DIR) + "/examples/deployment.json";

std::string tempDir() {
  std::string tmpl = ::testing::TempDir() + "edgehub-bin-XXXXXX";
  char* made = ::mkdtemp(tmpl.data());
  EXPECT_NE(made, nullptr);
  return tmpl;
}

struct Outcome {
  int code;
  std::string out;
  std::string err;
};

Outcome runBinary(std::vector<std::string> args) {
  args.insert(args.begin(), kBinary);
  Subprocess p(args);
  EXPECT_TRUE(p.started());
  auto code = p.wait(60s);
  EXPECT_TRUE(code.has_value()) << "edgehub did not exit";
  return {code.value_or(-1), p.stdoutText(), p.stderrText()};
}

size_t lineCount(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

TEST(EdgehubBinaryTest, HelpForEveryCommand) {
  Outcome top = runBinary({"--help"});
  EXPECT_EQ(top.code, 0);
  EXPECT_NE(top.out.find("Commands:"), std::string::npos);
  for (std::vector<std::string> cmd : {std::vector<std::string>{"run", "--help"},
                                       {"route", "test", "--help"},
                                       {"route", "check", "--help"},
                                       {"identity", "connection-string", "--help"},
                                       {"certs", "ca-path", "--help"},
                                       {"bench", "--help"}}) {
    Outcome o = runBinary(cmd);
    EXPECT_EQ(o.code, 0) << cmd[0];
    EXPECT_NE(o.out.find("Usage: edgehub " + cmd[0]), std::string::npos) << o.out;
  }
  Outcome run = runBinary({"run", "--help"});
  EXPECT_NE(run.out.find("--manifest FILE"), std::string::npos);
  EXPECT_NE(run.out.find("--log-format FORMAT"), std::string::npos);
}

TEST(EdgehubBinaryTest, BadFlagsExitTwoWithOneLine) {
  const std::vector<std::vector<std::string>> cases = {
      {"run", "--no-such-flag"},
      {"run", "--manifest", kManifest, "--io-threads", "zero"},
      {"run", "--manifest", kManifest, "--log-level", "loud"},
      {"run", "--manifest", kManifest, "--log-format", "xml"},
      {"run", "--manifest"},
      {"run"},
      {"frobnicate"},
      {"route", "check"},
      {"route", "test", "a", "b"},
  };
  for (const auto& c : cases) {
    Outcome o = runBinary(c);
    std::string joined;
    for (const auto& a : c) joined += a + " ";
    EXPECT_EQ(o.code, 2) << joined;
    EXPECT_EQ(lineCount(o.err), 1u) << joined << "\n" << o.err;
    EXPECT_EQ(o.err.rfind("edgehub: ", 0), 0u) << o.err;
  }
}

TEST(EdgehubBinaryTest, InvalidManifestFailsWithReason) {
  std::string dir = tempDir();
  std::string path = dir + "/bad.json";
  std::ofstream(path) << R"({"schemaVersion": "1.4", "routes": {}, "storeAndForwardConfiguration": {}})";
  Outcome o = runBinary({"run", "--manifest", path, "--data", dir + "/data", "--mqtt-listen", "127.0.0.1:0", "--mqtts-listen", "off"});
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("schemaVersion"), std::string::npos) << o.err;
  std::filesystem::remove_all(dir);
}

class RunTest : public ::testing::TestWithParam<int> {};

TEST_P(RunTest, ListensAndStopsCleanlyOnSignal) {
  std::string dir = tempDir();
  Subprocess hub({kBinary, "run", "--manifest", kManifest, "--data", dir + "/data", "--mqtts-listen", "off", "--mqtt-listen",
                  "127.0.0.1:0", "--io-threads", "2", "--log-format", "json"});
  ASSERT_TRUE(hub.started());
  auto line = hub.waitForStdoutLine("listening for MQTT on ", 60s);
  ASSERT_TRUE(line.has_value()) << hub.stderrText();
  std::string address = line->substr(line->find(" on ") + 4);
  int port = std::stoi(address.substr(address.rfind(':') + 1));
  ASSERT_GT(port, 0);

  // The listener really accepts: a TCP connect to the printed address succeeds.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ::close(fd);

  hub.sendSignal(GetParam());
  auto code = hub.wait(60s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << hub.stderrText();
  // JSON logs: every stderr line is one JSON object with a timestamp and a category.
  std::string err = hub.stderrText();
  ASSERT_FALSE(err.empty());
  size_t pos = 0;
  for (size_t nl; (nl = err.find('\n', pos)) != std::string::npos; pos = nl + 1) {
    std::string l = err.substr(pos, nl - pos);
    EXPECT_EQ(l.rfind("{\"ts\":\"", 0), 0u) << l;
    EXPECT_NE(l.find("\"cat\":"), std::string::npos) << l;
  }
  EXPECT_NE(err.find("shutting down"), std::string::npos);
  // Generated identities persist in the data directory.
  EXPECT_TRUE(std::filesystem::exists(dir + "/data/identities.json"));
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Signals, RunTest, ::testing::Values(SIGINT, SIGTERM));

TEST(EdgehubBinaryTest, BusyPortIsReportedAtStart) {
  // Hold a port, then ask the hub for the same one.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = 0;
  ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  std::string dir = tempDir();
  Outcome o = runBinary({"run", "--manifest", kManifest, "--data", dir + "/data", "--mqtts-listen", "off", "--mqtt-listen",
                         "127.0.0.1:" + std::to_string(ntohs(sa.sin_port))});
  ::close(fd);
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("cannot listen for MQTT"), std::string::npos) << o.err;
  std::filesystem::remove_all(dir);
}

TEST(EdgehubBinaryTest, ConnectionStringForGeneratedIdentity) {
  std::string dir = tempDir();
  {
    Subprocess hub({kBinary, "run", "--manifest", kManifest, "--data", dir, "--mqtt-listen", "127.0.0.1:0", "--mqtts-listen", "off"});
    ASSERT_TRUE(hub.waitForStdoutLine("listening for MQTT on ", 60s).has_value()) << hub.stderrText();
    hub.sendSignal(SIGTERM);
    ASSERT_EQ(hub.wait(60s), std::optional<int>(0));
  }
  Outcome o = runBinary({"identity", "connection-string", "sensor", "--data", dir});
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("ModuleId=sensor;"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("SharedAccessKey="), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("GatewayHostName="), std::string::npos) << o.out;
  Outcome unknown = runBinary({"identity", "connection-string", "nosuchmodule", "--data", dir});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_NE(unknown.err.find("nosuchmodule"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace edgehub
