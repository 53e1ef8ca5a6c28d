// ParseVmSpecYaml and VmSpecToYaml: the field-for-field mapping, strict keys
// and scalar types with positions in errors, the input limits, and round
// trips of every field and of awkward strings.
#include "vmspec/yaml.h"

#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

namespace vmlet::vmspec {
namespace {

namespace pb = ::google::protobuf;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::testing::StartsWith;

v1::VmSpec FromText(const std::string& text) {
  v1::VmSpec spec;
  EXPECT_TRUE(pb::TextFormat::ParseFromString(text, &spec)) << text;
  return spec;
}

std::string Message(const absl::Status& status) { return std::string(status.message()); }

// The status of parsing `yaml` as "vm.yaml".
absl::Status ParseError(const std::string& yaml) {
  return ParseVmSpecYaml(yaml, "vm.yaml").status();
}

MATCHER_P(EqualsProto, expected, "") {
  std::string diff;
  pb::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  if (differencer.Compare(expected, arg)) return true;
  *result_listener << diff;
  return false;
}

TEST(ParseVmSpecYamlTest, ReadsEachKindOfField) {
  const char* yaml = R"(# A pet VM.
metadata:
  namespace: default
  name: web
  labels:
    app: web
    empty:
spec:
  cpu:
    count: 4
    topology: {sockets: 1, cores: 2, threads: 2}
    features:
    - name: avx2
      policy: require
  memory:
    size: 8Gi
    locked: true
    balloon: false
  machine_type: q35
  features:
    acpi: True
    hyperv: {spinlocks: +8191}
  disks:
  - name: data
    empty: {size: 100Gi}
    boot_order: "2"
  - name: vol
    volume:
      path: /dev/xvdb
  devices:
    tpm: {version: "2.0"}
    rng:
  cloud_init:
    user_data: |
      #cloud-config
      packages: [nginx]
    ssh_authorized_keys: ["ssh-ed25519 AAAA a@b"]
)";
  absl::StatusOr<std::vector<v1::VmSpec>> specs = ParseVmSpecYaml(yaml, "vm.yaml");
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_THAT(*specs, SizeIs(1));
  EXPECT_THAT((*specs)[0], EqualsProto(FromText(R"pb(
                metadata {
                  namespace: "default"
                  name: "web"
                  labels { key: "app" value: "web" }
                  labels { key: "empty" value: "" }
                }
                spec {
                  cpu {
                    count: 4
                    topology { sockets: 1 cores: 2 threads: 2 }
                    features { name: "avx2" policy: "require" }
                  }
                  memory { size: "8Gi" locked: true balloon: false }
                  machine_type: "q35"
                  features {
                    acpi: true
                    hyperv { spinlocks: 8191 }
                  }
                  disks {
                    name: "data"
                    empty { size: "100Gi" }
                    boot_order: 2
                  }
                  disks {
                    name: "vol"
                    volume { path: "/dev/xvdb" }
                  }
                  devices { tpm { version: "2.0" } }
                  cloud_init {
                    user_data: "#cloud-config\npackages: [nginx]\n"
                    ssh_authorized_keys: "ssh-ed25519 AAAA a@b"
                  }
                }
              )pb")));
  // A null value leaves the field unset; {} sets an empty message.
  EXPECT_FALSE((*specs)[0].spec().devices().has_rng());
  EXPECT_TRUE((*specs)[0].spec().devices().has_tpm());
}

TEST(ParseVmSpecYamlTest, ReadsEveryDocumentAndSkipsEmptyOnes) {
  absl::StatusOr<std::vector<v1::VmSpec>> specs = ParseVmSpecYaml(
      "---\nmetadata: {name: a}\n---\n---\n# nothing\n---\nmetadata: {name: b}\n...\n", "f");
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_THAT(*specs, SizeIs(2));
  EXPECT_EQ((*specs)[0].metadata().name(), "a");
  EXPECT_EQ((*specs)[1].metadata().name(), "b");
  for (const char* empty : {"", "\n", "---\n", "# only a comment\n", "---\n---\n", "~\n"}) {
    absl::StatusOr<std::vector<v1::VmSpec>> none = ParseVmSpecYaml(empty, "f");
    ASSERT_TRUE(none.ok()) << none.status();
    EXPECT_TRUE(none->empty()) << empty;
  }
  absl::StatusOr<std::vector<v1::VmSpec>> empty_spec = ParseVmSpecYaml("{}\n", "f");
  ASSERT_TRUE(empty_spec.ok()) << empty_spec.status();
  EXPECT_THAT(*empty_spec, SizeIs(1));
}

TEST(ParseVmSpecYamlTest, RefusesUnknownKeysWithPositionAndPath) {
  EXPECT_EQ(Message(ParseError("metadata:\n  name: a\nspec:\n  cpu:\n    cores: 2\n")),
            "vm.yaml:5:5: spec.cpu: unknown key \"cores\": expected one of count, topology, mode, "
            "model, features, pins, emulator_cpuset");
  EXPECT_EQ(Message(ParseError("apiVersion: v1\n")),
            "vm.yaml:1:1: unknown key \"apiVersion\": expected one of metadata, spec");
  EXPECT_EQ(Message(ParseError("spec:\n  disks:\n  - name: a\n  - name: b\n    size: 1Gi\n")),
            "vm.yaml:5:5: spec.disks[1]: unknown key \"size\": expected one of name, root, empty, "
            "volume, bus, cache, io, read_only, serial, boot_order");
  // JSON names are not field names.
  EXPECT_THAT(Message(ParseError("spec: {cloudInit: {}}\n")),
              StartsWith("vm.yaml:1:8: spec: unknown key \"cloudInit\""));
  // The second document's position.
  EXPECT_THAT(Message(ParseError("metadata: {name: a}\n---\nmetadata: {nam: b}\n")),
              StartsWith("vm.yaml:3:12: metadata: unknown key \"nam\""));
  EXPECT_EQ(ParseError("spec: {cpu: {cores: 2}}").code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseVmSpecYamlTest, RefusesWrongKindsOfValues) {
  struct Case {
    std::string yaml;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"spec: {cpu: {count: four}}",
       "vm.yaml:1:21: spec.cpu.count: \"four\" is not an integer: "
       "expected 0 to 4294967295"},
      {"spec: {cpu: {count: -1}}", "vm.yaml:1:21: spec.cpu.count: \"-1\" is not an integer"},
      {"spec: {cpu: {count: 4294967296}}", "vm.yaml:1:21: spec.cpu.count: \"4294967296\""},
      {"spec: {cpu: {count: 1.5}}", "vm.yaml:1:21: spec.cpu.count: \"1.5\""},
      {"spec: {cpu: {count: 0x10}}", "vm.yaml:1:21: spec.cpu.count: \"0x10\""},
      {"spec: {cpu: {count: ''}}", "vm.yaml:1:21: spec.cpu.count: \"\" is not an integer"},
      {"spec: {cpu: {count: [1]}}", "vm.yaml:1:21: spec.cpu.count: a list is not an integer"},
      {"metadata: {generation: 9223372036854775808}",
       "vm.yaml:1:24: metadata.generation: \"9223372036854775808\" is not an integer: expected "
       "-9223372036854775808 to 9223372036854775807"},
      {"spec: {memory: {locked: yes}}",
       "vm.yaml:1:25: spec.memory.locked: \"yes\" is not a boolean: expected true or false"},
      {"spec: {memory: {locked: 1}}", "vm.yaml:1:25: spec.memory.locked: \"1\" is not a boolean"},
      {"spec: {memory: {size: {a: b}}}",
       "vm.yaml:1:23: spec.memory.size: expected a string, got a mapping"},
      {"spec: {memory: 4Gi}",
       "vm.yaml:1:16: spec.memory: expected a mapping of Memory fields, got a scalar"},
      {"spec: {disks: {name: a}}", "vm.yaml:1:15: spec.disks: expected a list, got a mapping"},
      {"spec: {disks: [name]}",
       "vm.yaml:1:16: spec.disks[0]: expected a mapping of Disk fields, got a scalar"},
      {"spec: {cloud_init: {ssh_authorized_keys: ssh-rsa AAAA}}",
       "vm.yaml:1:42: spec.cloud_init.ssh_authorized_keys: expected a list, got a scalar"},
      {"spec: {cloud_init: {ssh_authorized_keys: [a, ~]}}",
       "vm.yaml:1:46: spec.cloud_init.ssh_authorized_keys[1]: expected a string, got null"},
      {"metadata: {labels: [a]}", "vm.yaml:1:20: metadata.labels: expected a mapping, got a list"},
      {"metadata: {labels: {a: [b]}}",
       "vm.yaml:1:24: metadata.labels[\"a\"]: expected a string, got a list"},
      {"metadata: {labels: {[a]: b}}",
       "vm.yaml:1:21: metadata.labels: expected a string key, got a list"},
      {"metadata: {labels: {a: b, a: c}}",
       "vm.yaml:1:27: metadata.labels: key \"a\" is given twice"},
      {"metadata: {name: a, name: b}", "vm.yaml:1:21: metadata: key \"name\" is given twice"},
      {"{[metadata]: {}}", "vm.yaml:1:2: expected a field name as key, got a list"},
      {"- metadata: {}", "vm.yaml:1:1: expected a mapping of VmSpec fields, got a list"},
      {"spec: {disks: [{name: a, root: {}, empty: {size: 1Gi}}]}",
       "vm.yaml:1:36: spec.disks[0]: \"root\" and \"empty\" are both set: expected only one of "
       "root, empty, volume"},
      {"metadata: {name: \"a\xff\xc0\"}",
       "vm.yaml:1:18: metadata.name: byte 1 of the string is not valid UTF-8"},
      {"metadata: {labels: {\"\xed\xa0\x80\": b}}",
       "vm.yaml:1:21: metadata.labels[\"\\xed\\xa0\\x80\"]: byte 0 of the string is not valid "
       "UTF-8"},
      {"spec: {cpu: {count: 2}", "vm.yaml:1:"},
      {"spec: [", "vm.yaml:1:"},
      {"a: b\n c: d\n", "vm.yaml:"},
  };
  for (const Case& c : cases) {
    const absl::Status status = ParseError(c.yaml);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.yaml << ": " << status;
    EXPECT_THAT(Message(status), StartsWith(c.error)) << c.yaml;
  }
}

TEST(ParseVmSpecYamlTest, AcceptsQuotedScalarsAndNullMembersOfOneofs) {
  absl::StatusOr<std::vector<v1::VmSpec>> specs = ParseVmSpecYaml(
      "spec:\n  cpu: {count: '4'}\n  memory: {locked: \"true\", balloon: FALSE}\n"
      "  disks: [{name: a, root: ~, empty: {size: 1Gi}}]\n"
      "  machine_type: \"7\"\n  devices: {tpm: {version: 2.0}}\n",
      "vm.yaml");
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_THAT((*specs)[0], EqualsProto(FromText(R"pb(
                spec {
                  cpu { count: 4 }
                  memory { locked: true balloon: false }
                  disks {
                    name: "a"
                    empty { size: "1Gi" }
                  }
                  machine_type: "7"
                  devices { tpm { version: "2.0" } }
                }
              )pb")));
}

TEST(ParseVmSpecYamlTest, EnforcesItsLimits) {
  // Size.
  std::string big = "metadata: {name: a}\n#" + std::string(kMaxVmSpecYamlBytes, 'x');
  EXPECT_THAT(Message(ParseError(big)), StartsWith("vm.yaml: the YAML is "));
  // Nesting: 32 levels are fine (past the schema: an error about the value),
  // 33 are refused before conversion.
  auto nested = [](int levels) {
    return "metadata: {labels: {a: " + std::string(levels - 3, '[') + std::string(levels - 3, ']') +
           "}}";
  };
  EXPECT_THAT(Message(ParseError(nested(32))),
              HasSubstr("metadata.labels[\"a\"]: expected a string"));
  EXPECT_EQ(Message(ParseError(nested(33))), "vm.yaml:1:53: nested more than 32 levels deep");
  EXPECT_THAT(Message(ParseError(std::string(100000, '[') + std::string(100000, ']'))),
              StartsWith("vm.yaml:1:"));
  // Documents.
  std::string documents;
  for (int i = 0; i < kMaxVmSpecYamlDocuments; ++i) documents += "---\nmetadata: {name: a}\n";
  absl::StatusOr<std::vector<v1::VmSpec>> hundred = ParseVmSpecYaml(documents, "vm.yaml");
  ASSERT_TRUE(hundred.ok()) << hundred.status();
  EXPECT_THAT(*hundred, SizeIs(100));
  EXPECT_EQ(Message(ParseError(documents + "---\n{}\n")), "vm.yaml: more than 100 YAML documents");
  std::string separators;
  for (int i = 0; i < 200000; ++i) separators += "---\n";
  EXPECT_EQ(Message(ParseError(separators)), "vm.yaml: more than 100 YAML documents");
}

TEST(ParseVmSpecYamlTest, AliasesWorkButCannotExpandWithoutBound) {
  absl::StatusOr<std::vector<v1::VmSpec>> specs = ParseVmSpecYaml(
      "spec:\n  disks:\n  - &d {name: a, empty: {size: 1Gi}, cache: none}\n  - *d\n", "vm.yaml");
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_EQ((*specs)[0].spec().disks_size(), 2);
  EXPECT_EQ((*specs)[0].spec().disks(1).cache(), "none");

  // 100 aliases of a 200 KB string: 20 MB.
  std::string bomb = "spec:\n  cloud_init:\n    user_data: &k " + std::string(200000, 'k') +
                     "\n    ssh_authorized_keys: [*k";
  for (int i = 1; i < 100; ++i) bomb += ", *k";
  bomb += "]\n";
  EXPECT_THAT(Message(ParseError(bomb)),
              HasSubstr("the YAML expands (through aliases) to more than 8388608 bytes"));

  // Aliases of their own node end at the schema, not in a loop.
  EXPECT_EQ(ParseError("spec: &a {cpu: *a}\n").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseError("spec: {disks: &d [*d]}\n").code(), absl::StatusCode::kInvalidArgument);
}

TEST(VmSpecToYamlTest, WritesSetFieldsInFieldOrder) {
  const v1::VmSpec spec = FromText(R"pb(
    spec {
      disks {
        name: "data"
        empty { size: "10Gi" }
      }
      memory { size: "4Gi" balloon: false }
      cpu { count: 2 }
      firmware {}
    }
    metadata {
      name: "web"
      namespace: "default"
      labels { key: "b" value: "2" }
      labels { key: "a" value: "true" }
    }
  )pb");
  EXPECT_EQ(VmSpecToYaml(spec),
            R"(metadata:
  namespace: default
  name: web
  labels:
    a: "true"
    b: "2"
spec:
  cpu:
    count: 2
  memory:
    size: 4Gi
    balloon: false
  firmware: {}
  disks:
    - name: data
      empty:
        size: 10Gi
)");
  EXPECT_EQ(VmSpecToYaml(v1::VmSpec()), "{}\n");
}

// Sets every field of `message` below it to a value other than its default:
// strings from `strings` in turn, the largest integers, true, two elements
// of lists and maps. Of each oneof only member `variant` (modulo its size).
void FillEverything(pb::Message& message, int variant, const std::vector<std::string>& strings,
                    size_t& next_string) {
  const pb::Descriptor* descriptor = message.GetDescriptor();
  const pb::Reflection* reflection = message.GetReflection();
  auto next = [&] { return strings[next_string++ % strings.size()]; };
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const pb::FieldDescriptor* field = descriptor->field(i);
    if (const pb::OneofDescriptor* oneof = field->real_containing_oneof();
        oneof != nullptr && oneof->field(variant % oneof->field_count()) != field) {
      continue;
    }
    const int count = field->is_repeated() ? 2 : 1;
    for (int k = 0; k < count; ++k) {
      switch (field->cpp_type()) {
        case pb::FieldDescriptor::CPPTYPE_MESSAGE: {
          pb::Message* child = field->is_repeated() ? reflection->AddMessage(&message, field)
                                                    : reflection->MutableMessage(&message, field);
          if (field->is_map()) {
            const pb::FieldDescriptor* key = child->GetDescriptor()->FindFieldByNumber(1);
            child->GetReflection()->SetString(child, key, "key" + std::to_string(k) + next());
            const pb::FieldDescriptor* value = child->GetDescriptor()->FindFieldByNumber(2);
            child->GetReflection()->SetString(child, value, next());
          } else {
            FillEverything(*child, variant, strings, next_string);
          }
          break;
        }
        case pb::FieldDescriptor::CPPTYPE_STRING:
          field->is_repeated() ? reflection->AddString(&message, field, next())
                               : reflection->SetString(&message, field, next());
          break;
        case pb::FieldDescriptor::CPPTYPE_BOOL:
          field->is_repeated() ? reflection->AddBool(&message, field, true)
                               : reflection->SetBool(&message, field, true);
          break;
        case pb::FieldDescriptor::CPPTYPE_UINT32:
          field->is_repeated()
              ? reflection->AddUInt32(&message, field, std::numeric_limits<uint32_t>::max())
              : reflection->SetUInt32(&message, field, std::numeric_limits<uint32_t>::max());
          break;
        case pb::FieldDescriptor::CPPTYPE_INT64:
          field->is_repeated()
              ? reflection->AddInt64(&message, field, std::numeric_limits<int64_t>::min())
              : reflection->SetInt64(&message, field, std::numeric_limits<int64_t>::min());
          break;
        default:
          ADD_FAILURE() << field->full_name() << ": fill its type here";
      }
    }
  }
}

// Strings a naive writer would turn into something else.
const std::vector<std::string>& AwkwardStrings() {
  static const std::vector<std::string> strings = {
      "plain",
      "true",
      "False",
      "yes",
      "null",
      "~",
      "123",
      "-1",
      "-",
      "+",
      "1e3",
      "0-1",
      "1:20",
      "4Gi",
      "Yes",
      "OFF",
      "1.5",
      ".inf",
      "0x10",
      "2.0",
      "a: b",
      "#not a comment",
      "a #b",
      "- item",
      "{x}",
      "[x]",
      "*alias",
      "&anchor",
      "!tag",
      "%dir",
      "@at",
      "`tick",
      "key:",
      "---",
      "...",
      " ",
      " leading and trailing ",
      "'single'",
      "\"double\"",
      "back\\slash",
      "tab\there",
      "control\x01\x7f",
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
      "#cloud-config\npackages: [nginx]\nruncmd:\n  - echo hi\n",
      "no final newline\nsecond",
      "two final newlines\n\n",
      "\n",
      "\nleading newline\n",
      "  indented\n  block\n",
      "\tindented by a tab\n",
      "lines\n\n  with a gap and trailing spaces  \n",
      "windows\r\nline ends\r\n",
      std::string("nul\0inside", 10),
  };
  return strings;
}

TEST(VmSpecToYamlTest, EveryFieldSurvivesARoundTrip) {
  // One variant per member of the largest oneof.
  for (int variant = 0; variant < 3; ++variant) {
    for (size_t offset = 0; offset < AwkwardStrings().size(); offset += 7) {
      v1::VmSpec spec;
      size_t next_string = offset;
      FillEverything(spec, variant, AwkwardStrings(), next_string);
      const std::string yaml = VmSpecToYaml(spec);
      absl::StatusOr<std::vector<v1::VmSpec>> back = ParseVmSpecYaml(yaml, "out.yaml");
      ASSERT_TRUE(back.ok()) << back.status() << "\n" << yaml;
      ASSERT_THAT(*back, SizeIs(1)) << yaml;
      EXPECT_THAT((*back)[0], EqualsProto(spec)) << yaml;
    }
  }
}

TEST(VmSpecToYamlTest, EachAwkwardStringSurvivesARoundTrip) {
  for (const std::string& text : AwkwardStrings()) {
    v1::VmSpec spec;
    spec.mutable_spec()->mutable_cloud_init()->set_user_data(text);
    spec.mutable_spec()->mutable_cloud_init()->add_ssh_authorized_keys(text);
    (*spec.mutable_metadata()->mutable_labels())[text] = text;
    const std::string yaml = VmSpecToYaml(spec);
    absl::StatusOr<std::vector<v1::VmSpec>> back = ParseVmSpecYaml(yaml, "out.yaml");
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << yaml;
    EXPECT_THAT((*back)[0], EqualsProto(spec)) << yaml;
  }
}

TEST(VmSpecToYamlTest, WritesMultiLineTextAsLiteralBlocks) {
  v1::VmSpec spec;
  spec.mutable_spec()->mutable_cloud_init()->set_user_data("#cloud-config\nruncmd: [ls]\n");
  // The block is the document's last node: its final newline still comes back.
  EXPECT_EQ(VmSpecToYaml(spec),
            "spec:\n  cloud_init:\n    user_data: |\n      #cloud-config\n      runcmd: [ls]\n");
  absl::StatusOr<std::vector<v1::VmSpec>> back = ParseVmSpecYaml(VmSpecToYaml(spec), "out.yaml");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_THAT((*back)[0], EqualsProto(spec));
}

// The YAML form converts exactly these field types; a new field of another
// type needs a conversion first.
void ExpectSupportedTypes(const pb::Descriptor* descriptor, std::set<std::string>& seen) {
  if (!seen.insert(descriptor->full_name()).second) return;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const pb::FieldDescriptor* field = descriptor->field(i);
    switch (field->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_MESSAGE:
        if (field->is_map()) {
          EXPECT_EQ(field->message_type()->FindFieldByNumber(1)->type(),
                    pb::FieldDescriptor::TYPE_STRING)
              << field->full_name();
          EXPECT_EQ(field->message_type()->FindFieldByNumber(2)->type(),
                    pb::FieldDescriptor::TYPE_STRING)
              << field->full_name();
        } else {
          ExpectSupportedTypes(field->message_type(), seen);
        }
        break;
      case pb::FieldDescriptor::CPPTYPE_STRING:
        EXPECT_NE(field->type(), pb::FieldDescriptor::TYPE_BYTES) << field->full_name();
        break;
      case pb::FieldDescriptor::CPPTYPE_BOOL:
      case pb::FieldDescriptor::CPPTYPE_INT32:
      case pb::FieldDescriptor::CPPTYPE_INT64:
      case pb::FieldDescriptor::CPPTYPE_UINT32:
      case pb::FieldDescriptor::CPPTYPE_UINT64:
        break;
      default:
        ADD_FAILURE() << field->full_name() << " has a type the YAML form does not convert";
    }
  }
}

TEST(VmSpecToYamlTest, EveryFieldHasAConvertedType) {
  std::set<std::string> seen;
  ExpectSupportedTypes(v1::VmSpec::descriptor(), seen);
  EXPECT_GT(seen.size(), 20u);
}

}  // namespace
}  // namespace vmlet::vmspec
