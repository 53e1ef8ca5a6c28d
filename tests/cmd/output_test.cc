#include "cmd/vmletctl/output.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

namespace vmlet::ctl {
namespace {

TEST(JsonToYamlTest, WritesBlockStyleInKeyOrder) {
  EXPECT_EQ(JsonToYaml(R"({"pods":[{"name":"demo","vcpus":2,"ready":true},)"
                       R"({"name":"web","vcpus":1,"ready":false}],"next":null})"),
            "pods:\n"
            "  - name: demo\n"
            "    vcpus: 2\n"
            "    ready: true\n"
            "  - name: web\n"
            "    vcpus: 1\n"
            "    ready: false\n"
            "next: null\n");
}

TEST(JsonToYamlTest, EmptyContainersAndNestedLists) {
  EXPECT_EQ(JsonToYaml(R"({"a":{},"b":[],"c":[[1,2],[]],"d":{"e":{"f":"g"}}})"),
            "a: {}\n"
            "b: []\n"
            "c:\n"
            "  - - 1\n"
            "    - 2\n"
            "  - []\n"
            "d:\n"
            "  e:\n"
            "    f: g\n");
}

TEST(JsonToYamlTest, TopLevelScalarsAndArrays) {
  EXPECT_EQ(JsonToYaml("42"), "42\n");
  EXPECT_EQ(JsonToYaml(R"(["x", {"k": "v", "l": [true]}])"),
            "- x\n"
            "- k: v\n"
            "  l:\n"
            "    - true\n");
  EXPECT_EQ(JsonToYaml(""), "");
}

// Every string must read back as the same string, not as a number, a
// boolean, null or something else YAML would make of it.
TEST(JsonToYamlTest, StringsReadBackUnchanged) {
  const std::string strings[] = {
      "plain",
      "/run/vmlet/cri.sock",
      "127.0.0.1:5000/vms/tiny:1",
      "sha256:abc",
      "123",
      "1.5",
      "-1",
      "0x1F",
      "1e3",
      "true",
      "False",
      "yes",
      "no",
      "on",
      "null",
      "~",
      "",
      " leading",
      "trailing ",
      "a: b",
      "a #b",
      "key:",
      "-dash",
      "[list]",
      "{map}",
      "quote\"d",
      "back\\slash",
      "line\nbreak",
      "tab\there",
      "ünïcödé",
      "*alias",
      "&anchor",
      "!tag",
      "%percent",
      "@at",
      "`tick",
      "|pipe",
      ">fold",
      "'single'",
      "a,b",
  };
  for (const std::string& value : strings) {
    std::string json = "{\"k\":\"";
    for (char c : value) {
      if (c == '"' || c == '\\') json += '\\';
      if (c == '\n') {
        json += "\\n";
      } else if (c == '\t') {
        json += "\\t";
      } else {
        json += c;
      }
    }
    json += "\"}";
    const std::string yaml = JsonToYaml(json);
    YAML::Node node = YAML::Load(yaml);
    ASSERT_TRUE(node["k"].IsScalar()) << yaml;
    EXPECT_EQ(node["k"].as<std::string>(), value) << "YAML: " << yaml;
    // Written plain, it must not be what a YAML reader takes for a number,
    // a boolean or null.
    if (node["k"].Tag() == "?") {
      bool as_bool = false;
      double as_double = 0;
      EXPECT_FALSE(YAML::convert<bool>::decode(node["k"], as_bool)) << yaml;
      EXPECT_FALSE(YAML::convert<double>::decode(node["k"], as_double)) << yaml;
      EXPECT_FALSE(node["k"].IsNull()) << yaml;
    }
  }
}

TEST(JsonToYamlTest, KeysThatNeedQuotingAreQuoted) {
  YAML::Node node = YAML::Load(JsonToYaml(R"({"a b":1,"true":2,"vmlet.io/vcpus":3})"));
  EXPECT_EQ(node["a b"].as<int>(), 1);
  EXPECT_EQ(node["true"].as<int>(), 2);
  EXPECT_EQ(node["vmlet.io/vcpus"].as<int>(), 3);
}

}  // namespace
}  // namespace vmlet::ctl
