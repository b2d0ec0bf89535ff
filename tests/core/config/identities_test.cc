#include "core/config/identities.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/base64.h"

namespace edgehub::core {
namespace {

// Deterministic test keys of a given decoded length.
std::string key(size_t bytes, char fill = 'k') { return base64Encode(std::string(bytes, fill)); }

std::string file(const std::string& identities, const std::string& head =
                     R"("hubHostName": "hub.example.net", "deviceId": "edge1")") {
  return "{" + head + ", \"identities\": " + identities + "}";
}

TEST(IdentitiesTest, ParsesModulesAndLeafDevices) {
  const std::string k1 = key(32, 'a');
  const std::string k2 = key(16, 'b');
  const std::string k3 = key(64, 'c');
  auto r = parseIdentityConfig(file(R"([{"moduleId": "sensor", "primaryKey": ")" + k1 +
                                    R"(", "secondaryKey": ")" + k2 + R"("},
      {"moduleId": "$edgeHub", "deviceId": "edge1", "primaryKey": ")" + k3 + R"(", "comment": "x"},
      {"deviceId": "leaf(1).a", "primaryKey": ")" + k1 + R"("}])"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->hub_host_name, "hub.example.net");
  EXPECT_EQ(r->device_id, "edge1");
  ASSERT_EQ(r->identities.size(), 3u);
  EXPECT_EQ(r->identities[0].identity, Identity::module("edge1", "sensor"));
  EXPECT_EQ(r->identities[0].primary_key, k1);
  EXPECT_EQ(r->identities[0].secondary_key, k2);
  EXPECT_EQ(r->identities[1].identity, Identity::module("edge1", "$edgeHub"));
  EXPECT_EQ(r->identities[1].secondary_key, "");
  EXPECT_EQ(r->identities[2].identity, Identity::device("leaf(1).a"));

  EXPECT_EQ(r->findByClientId("edge1/sensor"), &r->identities[0]);
  EXPECT_EQ(r->findByClientId("leaf(1).a"), &r->identities[2]);
  EXPECT_EQ(r->findByClientId("edge1/nope"), nullptr);
  EXPECT_EQ(r->findByClientId("edge1/Sensor"), nullptr);  // case-sensitive
  EXPECT_EQ(r->findByClientId("bad id"), nullptr);
  EXPECT_EQ(r->findByClientId(""), nullptr);
  EXPECT_EQ(r->findModule("$edgeHub"), &r->identities[1]);
  EXPECT_EQ(r->find(Identity::device("edge1")), nullptr);
}

TEST(IdentitiesTest, EmptyIdentityListIsValid) {
  auto r = parseIdentityConfig(file("[]"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_TRUE(r->identities.empty());
}

struct BadIdentityCase {
  const char* name;
  std::string json;
  std::string expected;
  friend void PrintTo(const BadIdentityCase& c, std::ostream* os) { *os << c.name; }
};

class IdentitiesBadTest : public testing::TestWithParam<BadIdentityCase> {};

TEST_P(IdentitiesBadTest, Rejected) {
  const auto& c = GetParam();
  auto r = parseIdentityConfig(c.json);
  ASSERT_FALSE(r.isOk()) << c.json;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(c.expected), std::string_view::npos)
      << "expected '" << c.expected << "' in:\n" << r.status().message();
}

const std::string kK = key(32);

INSTANTIATE_TEST_SUITE_P(
    Identities, IdentitiesBadTest,
    testing::Values(
        BadIdentityCase{"BadJson", "{\"hubHostName\": }", "line 1, column 17:"},
        BadIdentityCase{"NotObject", "[]", "must be a JSON object"},
        BadIdentityCase{"MissingHubHostName", R"({"deviceId": "e", "identities": []})",
                        "hubHostName: required"},
        BadIdentityCase{"HubHostNameNotString", R"({"hubHostName": 1, "deviceId": "e", "identities": []})",
                        "hubHostName: must be a string, got 1"},
        BadIdentityCase{"HubHostNameWithSemicolon",
                        R"({"hubHostName": "a;b", "deviceId": "e", "identities": []})",
                        "hubHostName: invalid host name string \"a;b\""},
        BadIdentityCase{"HubHostNameEmpty", R"({"hubHostName": "", "deviceId": "e", "identities": []})",
                        "hubHostName: invalid host name"},
        BadIdentityCase{"MissingDeviceId", R"({"hubHostName": "h", "identities": []})",
                        "deviceId: required"},
        BadIdentityCase{"BadDeviceId", R"({"hubHostName": "h", "deviceId": "a b", "identities": []})",
                        "deviceId: invalid device id 'a b'"},
        BadIdentityCase{"MissingIdentities", R"({"hubHostName": "h", "deviceId": "e"})",
                        "identities: required"},
        BadIdentityCase{"IdentitiesNotArray", file("{}"), "identities: must be an array, got an object"},
        BadIdentityCase{"EntryNotObject", file("[1]"), "identities[0]: must be an object, got 1"},
        BadIdentityCase{"LeafWithoutDeviceId", file(R"([{"primaryKey": ")" + kK + R"("}])"),
                        "identities[0].deviceId: required"},
        BadIdentityCase{"BadModuleId", file(R"([{"moduleId": "a/b", "primaryKey": ")" + kK + R"("}])"),
                        "identities[0].moduleId: invalid module id 'a/b'"},
        BadIdentityCase{"EmptyModuleId", file(R"([{"moduleId": "", "primaryKey": ")" + kK + R"("}])"),
                        "identities[0].moduleId: module id must not be empty"},
        BadIdentityCase{"ModuleIdNotString", file(R"([{"moduleId": 7, "primaryKey": ")" + kK + R"("}])"),
                        "identities[0].moduleId: must be a string, got 7"},
        BadIdentityCase{"BadLeafId", file(R"([{"deviceId": "$x", "primaryKey": ")" + kK + R"("}])"),
                        "identities[0].deviceId: invalid device id '$x'"},
        BadIdentityCase{"LeafUsesEdgeId", file(R"([{"deviceId": "edge1", "primaryKey": ")" + kK + R"("}])"),
                        "identities[0].deviceId: a leaf device cannot use the edge device's own id"},
        BadIdentityCase{"ModuleOfOtherDevice",
                        file(R"([{"moduleId": "m", "deviceId": "other", "primaryKey": ")" + kK + R"("}])"),
                        "identities[0].deviceId: a module entry belongs to the edge device 'edge1'"},
        BadIdentityCase{"MissingPrimaryKey", file(R"([{"moduleId": "m"}])"),
                        "identities[0].primaryKey: required"},
        BadIdentityCase{"PrimaryKeyNotString", file(R"([{"moduleId": "m", "primaryKey": null}])"),
                        "identities[0].primaryKey: must be a string, got null"},
        BadIdentityCase{"PrimaryKeyNotBase64", file(R"([{"moduleId": "m", "primaryKey": "not base64!"}])"),
                        "identities[0].primaryKey: invalid base64"},
        BadIdentityCase{"PrimaryKeyTooShort",
                        file(R"([{"moduleId": "m", "primaryKey": ")" + key(15) + R"("}])"),
                        "identities[0].primaryKey: key must decode to 16-64 bytes, got 15"},
        BadIdentityCase{"PrimaryKeyTooLong",
                        file(R"([{"moduleId": "m", "primaryKey": ")" + key(65) + R"("}])"),
                        "identities[0].primaryKey: key must decode to 16-64 bytes, got 65"},
        BadIdentityCase{"SecondaryKeyBad",
                        file(R"([{"moduleId": "m", "primaryKey": ")" + kK + R"(", "secondaryKey": ""}])"),
                        "identities[0].secondaryKey: key must decode to 16-64 bytes, got 0"},
        BadIdentityCase{"DuplicateModule",
                        file(R"([{"moduleId": "m", "primaryKey": ")" + kK + R"("},
                                 {"moduleId": "m", "deviceId": "edge1", "primaryKey": ")" + kK + R"("}])"),
                        "identities[1]: duplicate identity /devices/edge1/modules/m"},
        BadIdentityCase{"DuplicateLeaf",
                        file(R"([{"deviceId": "l", "primaryKey": ")" + kK + R"("},
                                 {"deviceId": "l", "primaryKey": ")" + kK + R"("}])"),
                        "identities[1]: duplicate identity /devices/l"},
        BadIdentityCase{"DuplicateMember",
                        file(R"([{"moduleId": "m", "moduleId": "n", "primaryKey": ")" + kK + R"("}])"),
                        "identities[0].moduleId: duplicate member name"},
        BadIdentityCase{"AllProblemsListed",
                        file(R"([{"moduleId": "a b", "primaryKey": "x"}, {"deviceId": 3}])",
                             R"("deviceId": "edge1")"),
                        "identities[0].primaryKey: invalid base64: length 1 is not a multiple of 4\n"
                        "identities[1].deviceId: must be a string, got 3\n"
                        "identities[1].primaryKey: required"}),
    [](const testing::TestParamInfo<BadIdentityCase>& p) { return std::string(p.param.name); });

TEST(IdentitiesTest, ErrorsNeverContainKeys) {
  const std::string secret = key(70, 's');  // too long, so it is reported
  auto r = parseIdentityConfig(file(R"([{"moduleId": "m", "primaryKey": ")" + secret + R"("}])"));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message().find(secret.substr(0, 12)), std::string_view::npos);
}

TEST(IdentitiesTest, ToStringNeverPrintsKeys) {
  const std::string k1 = key(32, 'p');
  const std::string k2 = key(32, 'q');
  auto r = parseIdentityConfig(file(R"([{"moduleId": "sensor", "primaryKey": ")" + k1 +
                                    R"(", "secondaryKey": ")" + k2 + R"("}])"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  const std::string text = r->toString() + r->identities[0].toString();
  EXPECT_NE(text.find("/devices/edge1/modules/sensor"), std::string::npos);
  EXPECT_EQ(text.find(k1), std::string::npos);
  EXPECT_EQ(text.find(k2), std::string::npos);
  EXPECT_EQ(text.find(k1.substr(0, 8)), std::string::npos);
}

TEST(IdentitiesTest, SerializeRoundTrips) {
  IdentityConfig config;
  config.hub_host_name = "h.example";
  config.device_id = "edge1";
  config.identities.push_back({Identity::module("edge1", "m1"), key(32, '1'), key(32, '2')});
  config.identities.push_back({Identity::device("leaf"), key(16, '3'), ""});
  auto back = parseIdentityConfig(serializeIdentityConfig(config));
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(back->hub_host_name, config.hub_host_name);
  EXPECT_EQ(back->device_id, config.device_id);
  ASSERT_EQ(back->identities.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back->identities[i].identity, config.identities[i].identity);
    EXPECT_EQ(back->identities[i].primary_key, config.identities[i].primary_key);
    EXPECT_EQ(back->identities[i].secondary_key, config.identities[i].secondary_key);
  }
}

TEST(IdentitiesTest, GeneratedKeysAre32RandomBytes) {
  std::set<std::string> seen;
  for (int i = 0; i < 16; ++i) {
    auto k = generateKey();
    ASSERT_TRUE(k.isOk()) << k.status().toString();
    auto bytes = base64Decode(*k);
    ASSERT_TRUE(bytes.isOk());
    EXPECT_EQ(bytes->size(), kGeneratedKeyBytes);
    seen.insert(*k);
  }
  // 16 draws of 256 bits: a repeat means the generator is broken, not bad luck.
  EXPECT_EQ(seen.size(), 16u);
}

TEST(IdentitiesTest, ConnectionStringFormat) {
  IdentityConfig config;
  config.hub_host_name = "myhub.azure-devices.net";
  config.device_id = "edge1";
  const std::string k = key(32, 'z');
  config.identities.push_back({Identity::module("edge1", "sensor"), k, key(32, 'y')});
  config.identities.push_back({Identity::device("leaf"), k, ""});
  EXPECT_EQ(edgeHubConnectionString(config, "sensor", "edge-gw.local:8883"),
            "HostName=myhub.azure-devices.net;DeviceId=edge1;ModuleId=sensor;SharedAccessKey=" + k +
                ";GatewayHostName=edge-gw.local:8883");
  EXPECT_EQ(edgeHubConnectionString(config, "sensor", ""),
            "HostName=myhub.azure-devices.net;DeviceId=edge1;ModuleId=sensor;SharedAccessKey=" + k);
  EXPECT_EQ(edgeHubConnectionString(config, "nope", "gw"), "");
  EXPECT_EQ(edgeHubConnectionString(config, "leaf", "gw"), "");  // a device, not a module
}

class IdentitiesDirTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = testing::TempDir() + "/identities_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/identities.json";
  }
  void TearDown() override {
    if (DIR* d = ::opendir(dir_.c_str())) {
      while (dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name != "." && name != "..") ::unlink((dir_ + "/" + name).c_str());
      }
      ::closedir(d);
    }
    ::rmdir(dir_.c_str());
  }
  std::vector<std::string> listDir() const {
    std::vector<std::string> names;
    if (DIR* d = ::opendir(dir_.c_str())) {
      while (dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name != "." && name != "..") names.push_back(name);
      }
      ::closedir(d);
    }
    return names;
  }
  static Manifest manifestWith(const std::vector<std::string>& modules) {
    Manifest m;
    for (const auto& name : modules) m.modules.push_back(ModuleSpec{name, "{}"});
    return m;
  }
  std::string dir_;
  std::string path_;
};

TEST_F(IdentitiesDirTest, GeneratesPersistsAndReuses) {
  auto first = loadOrCreateIdentities(dir_, manifestWith({"sensor", "filter"}));
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  EXPECT_EQ(first->hub_host_name, kDefaultHubHostName);
  EXPECT_EQ(first->device_id, kDefaultEdgeDeviceId);
  ASSERT_EQ(first->identities.size(), 3u);
  EXPECT_EQ(first->identities[0].identity, Identity::module("edgehub-device", "sensor"));
  EXPECT_EQ(first->identities[1].identity, Identity::module("edgehub-device", "filter"));
  // The hub's own identity, the operator's key for `edgehub method invoke`.
  EXPECT_EQ(first->identities[2].identity, Identity::module("edgehub-device", "$edgeHub"));
  for (const auto& e : first->identities) {
    EXPECT_EQ(base64Decode(e.primary_key)->size(), 32u);
    EXPECT_EQ(base64Decode(e.secondary_key)->size(), 32u);
    EXPECT_NE(e.primary_key, e.secondary_key);
  }

  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(listDir(), std::vector<std::string>{"identities.json"});  // no temp file left

  auto on_disk = loadIdentityFile(path_);
  ASSERT_TRUE(on_disk.isOk()) << on_disk.status().toString();
  EXPECT_EQ(on_disk->identities.size(), 3u);
  EXPECT_EQ(on_disk->identities[0].primary_key, first->identities[0].primary_key);

  // Restart with the same manifest: same keys, file untouched (a rewrite renames a new file into
  // place, which changes the inode).
  const ino_t inode = st.st_ino;
  auto second = loadOrCreateIdentities(dir_, manifestWith({"filter", "sensor"}));
  ASSERT_TRUE(second.isOk()) << second.status().toString();
  ASSERT_EQ(second->identities.size(), 3u);
  EXPECT_EQ(second->findModule("sensor")->primary_key, first->identities[0].primary_key);
  EXPECT_EQ(second->findModule("filter")->secondary_key, first->identities[1].secondary_key);
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, inode);

  // A new module gets a key; existing ones keep theirs; a removed module's key is kept.
  auto third = loadOrCreateIdentities(dir_, manifestWith({"sensor", "logger"}));
  ASSERT_TRUE(third.isOk()) << third.status().toString();
  ASSERT_EQ(third->identities.size(), 4u);
  EXPECT_EQ(third->findModule("sensor")->primary_key, first->identities[0].primary_key);
  EXPECT_EQ(third->findModule("filter")->primary_key, first->identities[1].primary_key);
  ASSERT_NE(third->findModule("logger"), nullptr);
  EXPECT_NE(third->findModule("logger")->primary_key, first->identities[0].primary_key);
  auto reread = loadIdentityFile(path_);
  ASSERT_TRUE(reread.isOk());
  ASSERT_NE(reread->findModule("logger"), nullptr);
  EXPECT_EQ(reread->findModule("logger")->primary_key, third->findModule("logger")->primary_key);
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_NE(st.st_ino, inode);  // rewritten
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(listDir(), std::vector<std::string>{"identities.json"});
}

TEST_F(IdentitiesDirTest, DefaultsOverridableAndExistingFileWins) {
  IdentityDefaults defaults;
  defaults.hub_host_name = "hub.example.net";
  defaults.device_id = "edge-7";
  auto first = loadOrCreateIdentities(dir_, manifestWith({"m"}), defaults);
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  EXPECT_EQ(first->hub_host_name, "hub.example.net");
  EXPECT_EQ(first->findByClientId("edge-7/m"), &first->identities[0]);
  auto second = loadOrCreateIdentities(dir_, manifestWith({"m"}));
  ASSERT_TRUE(second.isOk());
  EXPECT_EQ(second->device_id, "edge-7");
  EXPECT_EQ(second->hub_host_name, "hub.example.net");

  defaults.device_id = "$bad";
  ::unlink(path_.c_str());
  auto bad = loadOrCreateIdentities(dir_, manifestWith({"m"}), defaults);
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(IdentitiesDirTest, EmptyManifestStillCreatesFile) {
  auto r = loadOrCreateIdentities(dir_, manifestWith({}));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->identities.size(), 1u);  // only the hub's own, $edgeHub
  EXPECT_NE(r->findModule("$edgeHub"), nullptr);
  auto reread = loadIdentityFile(path_);
  ASSERT_TRUE(reread.isOk()) << reread.status().toString();
}

TEST_F(IdentitiesDirTest, CorruptFileIsNotOverwritten) {
  { std::ofstream(path_) << "{not json"; }
  auto r = loadOrCreateIdentities(dir_, manifestWith({"m"}));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("identities.json"), std::string_view::npos);
  std::ifstream in(path_);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "{not json");
}

TEST_F(IdentitiesDirTest, MissingDataDirIsIoError) {
  auto r = loadOrCreateIdentities(dir_ + "/missing", manifestWith({"m"}));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
}

TEST_F(IdentitiesDirTest, WriteReplacesAtomicallyWithMode0600) {
  { std::ofstream(path_) << "old"; }
  ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
  IdentityConfig config;
  config.hub_host_name = "h";
  config.device_id = "d";
  config.identities.push_back({Identity::device("leaf"), key(20), ""});
  ASSERT_TRUE(writeIdentityFile(path_, config).isOk());
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto back = loadIdentityFile(path_);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(back->identities.size(), 1u);
  EXPECT_EQ(listDir(), std::vector<std::string>{"identities.json"});
}

TEST_F(IdentitiesDirTest, LoadIdentityFileNamesFile) {
  { std::ofstream(path_) << R"({"hubHostName": "h", "deviceId": "d", "identities": [3]})"; }
  auto r = loadIdentityFile(path_);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message(),
            "identity file '" + path_ + "' is invalid:\nidentities[0]: must be an object, got 3");
}

}  // namespace
}  // namespace edgehub::core
