#include "vmspec/yaml.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "absl/strings/escaping.h"
#include "base/status.h"
#include "base/str_util.h"
#include "vmspec/validate.h"

namespace vmlet::vmspec {
namespace {

namespace pb = ::google::protobuf;

// Aliases let a small document name one big node many times; converting
// charges each visited node kNodeCost plus its scalar's bytes against
// kMaxExpandedBytes, so memory stays bounded whatever the input.
constexpr size_t kNodeCost = 16;
constexpr size_t kMaxExpandedBytes = 8 << 20;

std::string JoinPath(std::string_view path, std::string_view name) {
  return path.empty() ? std::string(name) : StrCat(path, ".", name);
}

// "origin:line:column: " of a position yaml-cpp reports (0-based).
std::string Where(std::string_view origin, const YAML::Mark& mark) {
  if (mark.is_null()) return StrCat(origin, ": ");
  return StrCat(origin, ":", mark.line + 1, ":", mark.column + 1, ": ");
}

// `text` in quotes for a message: C escapes, at most 64 bytes of it.
std::string Quoted(std::string_view text) {
  const bool cut = text.size() > 64;
  return StrCat("\"", absl::CHexEscape(absl::string_view(text.data(), cut ? 64 : text.size())),
                cut ? "...\"" : "\"");
}

std::string_view NodeKind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

// Counts documents and the nesting of each while yaml-cpp parses, before
// any tree is built. yaml-cpp itself stops at 2000 levels (DeepRecursion).
class ShapeCheck : public YAML::EventHandler {
 public:
  // The first collection nested deeper than kMaxVmSpecYamlDepth, if any.
  const std::optional<YAML::Mark>& too_deep() const { return too_deep_; }

  void OnDocumentStart(const YAML::Mark&) override { depth_ = 0; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Enter(mark);
  }
  void OnSequenceEnd() override { --depth_; }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Enter(mark);
  }
  void OnMapEnd() override { --depth_; }

 private:
  void Enter(const YAML::Mark& mark) {
    if (++depth_ > kMaxVmSpecYamlDepth && !too_deep_) too_deep_ = mark;
  }

  int depth_ = 0;
  std::optional<YAML::Mark> too_deep_;
};

// YAML nodes into messages by reflection. One per ParseVmSpecYaml call.
class Converter {
 public:
  explicit Converter(std::string_view origin) : origin_(origin) {}

  // `node` (a mapping) into `message`, whose fields are at `path`.
  absl::Status Message(const YAML::Node& node, std::string_view path, pb::Message& message) {
    VMLET_RETURN_IF_ERROR(Charge(node, path));
    const pb::Descriptor* descriptor = message.GetDescriptor();
    if (!node.IsMap()) {
      return Error(
          node, path,
          StrCat("expected a mapping of ", descriptor->name(), " fields, got ", NodeKind(node)));
    }
    std::set<int> seen;
    std::map<const pb::OneofDescriptor*, const pb::FieldDescriptor*> oneof_set;
    for (const auto& entry : node) {
      VMLET_RETURN_IF_ERROR(Charge(entry.first, path));
      if (!entry.first.IsScalar()) {
        return Error(entry.first, path,
                     StrCat("expected a field name as key, got ", NodeKind(entry.first)));
      }
      const std::string& key = entry.first.Scalar();
      const pb::FieldDescriptor* field = descriptor->FindFieldByName(key);
      if (field == nullptr) {
        return Error(
            entry.first, path,
            StrCat("unknown key ", Quoted(key), ": expected one of ", FieldNames(descriptor)));
      }
      if (!seen.insert(field->number()).second) {
        return Error(entry.first, path, StrCat("key ", Quoted(key), " is given twice"));
      }
      if (entry.second.IsNull()) continue;  // Unset.
      if (const pb::OneofDescriptor* oneof = field->real_containing_oneof(); oneof != nullptr) {
        auto [it, inserted] = oneof_set.emplace(oneof, field);
        if (!inserted) {
          return Error(entry.first, path,
                       StrCat("\"", it->second->name(), "\" and \"", key,
                              "\" are both set: expected only one of ", OneofNames(oneof)));
        }
      }
      VMLET_RETURN_IF_ERROR(Field(entry.second, JoinPath(path, key), field, message));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Field(const YAML::Node& node, const std::string& path,
                     const pb::FieldDescriptor* field, pb::Message& message) {
    const pb::Reflection* reflection = message.GetReflection();
    if (field->is_map()) return Map(node, path, field, message);
    if (field->is_repeated()) {
      VMLET_RETURN_IF_ERROR(Charge(node, path));
      if (!node.IsSequence()) {
        return Error(node, path, StrCat("expected a list, got ", NodeKind(node)));
      }
      for (size_t i = 0; i < node.size(); ++i) {
        const YAML::Node item = node[i];
        const std::string item_path = StrCat(path, "[", i, "]");
        if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
          VMLET_RETURN_IF_ERROR(Message(item, item_path, *reflection->AddMessage(&message, field)));
        } else {
          VMLET_RETURN_IF_ERROR(Scalar(item, item_path, field, message));
        }
      }
      return absl::OkStatus();
    }
    if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      return Message(node, path, *reflection->MutableMessage(&message, field));
    }
    return Scalar(node, path, field, message);
  }

  // A map<string, string> field: a mapping of scalars; a null value is "".
  absl::Status Map(const YAML::Node& node, const std::string& path,
                   const pb::FieldDescriptor* field, pb::Message& message) {
    VMLET_RETURN_IF_ERROR(Charge(node, path));
    if (!node.IsMap()) return Error(node, path, StrCat("expected a mapping, got ", NodeKind(node)));
    const pb::FieldDescriptor* key_field = field->message_type()->FindFieldByNumber(1);
    const pb::FieldDescriptor* value_field = field->message_type()->FindFieldByNumber(2);
    std::set<std::string> seen;
    for (const auto& entry : node) {
      VMLET_RETURN_IF_ERROR(Charge(entry.first, path));
      VMLET_RETURN_IF_ERROR(Charge(entry.second, path));
      if (!entry.first.IsScalar()) {
        return Error(entry.first, path,
                     StrCat("expected a string key, got ", NodeKind(entry.first)));
      }
      const std::string& key = entry.first.Scalar();
      const std::string entry_path = StrCat(path, "[", Quoted(key), "]");
      if (!seen.insert(key).second) {
        return Error(entry.first, path, StrCat("key ", Quoted(key), " is given twice"));
      }
      pb::Message* item = message.GetReflection()->AddMessage(&message, field);
      VMLET_RETURN_IF_ERROR(Scalar(entry.first, entry_path, key_field, *item));
      if (!entry.second.IsNull()) {
        VMLET_RETURN_IF_ERROR(Scalar(entry.second, entry_path, value_field, *item));
      }
    }
    return absl::OkStatus();
  }

  // A scalar into a singular field of `message`, or appended to a repeated one.
  absl::Status Scalar(const YAML::Node& node, const std::string& path,
                      const pb::FieldDescriptor* field, pb::Message& message) {
    VMLET_RETURN_IF_ERROR(Charge(node, path));
    const pb::Reflection* reflection = message.GetReflection();
    const bool repeated = field->is_repeated();
    switch (field->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_STRING: {
        if (!node.IsScalar()) {
          return Error(node, path, StrCat("expected a string, got ", NodeKind(node)));
        }
        if (size_t at = InvalidUtf8At(node.Scalar()); at != std::string_view::npos) {
          return Error(
              node, path,
              StrCat("byte ", at, " of the string is not valid UTF-8: expected UTF-8 text"));
        }
        if (repeated) {
          reflection->AddString(&message, field, node.Scalar());
        } else {
          reflection->SetString(&message, field, node.Scalar());
        }
        return absl::OkStatus();
      }
      case pb::FieldDescriptor::CPPTYPE_BOOL: {
        const std::string text = node.IsScalar() ? node.Scalar() : "";
        bool value;
        if (text == "true" || text == "True" || text == "TRUE") {
          value = true;
        } else if (text == "false" || text == "False" || text == "FALSE") {
          value = false;
        } else {
          return Error(node, path,
                       StrCat(Shown(node), " is not a boolean: expected true or false"));
        }
        if (repeated) {
          reflection->AddBool(&message, field, value);
        } else {
          reflection->SetBool(&message, field, value);
        }
        return absl::OkStatus();
      }
      case pb::FieldDescriptor::CPPTYPE_INT32:
        return Integer<int32_t>(node, path, field, message);
      case pb::FieldDescriptor::CPPTYPE_INT64:
        return Integer<int64_t>(node, path, field, message);
      case pb::FieldDescriptor::CPPTYPE_UINT32:
        return Integer<uint32_t>(node, path, field, message);
      case pb::FieldDescriptor::CPPTYPE_UINT64:
        return Integer<uint64_t>(node, path, field, message);
      default:
        break;
    }
    return absl::InternalError(StrCat(
        path, ": the YAML form has no conversion for a field of type ", field->cpp_type_name()));
  }

  // A decimal integer in the range of T.
  template <typename T>
  absl::Status Integer(const YAML::Node& node, const std::string& path,
                       const pb::FieldDescriptor* field, pb::Message& message) {
    std::string_view text = node.IsScalar() ? std::string_view(node.Scalar()) : "";
    if (text.starts_with('+')) text.remove_prefix(1);
    T value{};
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
      return Error(node, path,
                   StrCat(Shown(node), " is not an integer: expected ",
                          std::numeric_limits<T>::min(), " to ", std::numeric_limits<T>::max()));
    }
    const pb::Reflection* reflection = message.GetReflection();
    const bool repeated = field->is_repeated();
    if constexpr (std::is_same_v<T, int32_t>) {
      repeated ? reflection->AddInt32(&message, field, value)
               : reflection->SetInt32(&message, field, value);
    } else if constexpr (std::is_same_v<T, int64_t>) {
      repeated ? reflection->AddInt64(&message, field, value)
               : reflection->SetInt64(&message, field, value);
    } else if constexpr (std::is_same_v<T, uint32_t>) {
      repeated ? reflection->AddUInt32(&message, field, value)
               : reflection->SetUInt32(&message, field, value);
    } else {
      repeated ? reflection->AddUInt64(&message, field, value)
               : reflection->SetUInt64(&message, field, value);
    }
    return absl::OkStatus();
  }

  // A scalar quoted (at most 64 bytes of it) or the node's kind.
  static std::string Shown(const YAML::Node& node) {
    if (!node.IsScalar()) return std::string(NodeKind(node));
    return Quoted(node.Scalar());
  }

  static std::string FieldNames(const pb::Descriptor* descriptor) {
    std::string names;
    for (int i = 0; i < descriptor->field_count(); ++i) {
      StrAppend(&names, i == 0 ? "" : ", ", descriptor->field(i)->name());
    }
    return names;
  }

  static std::string OneofNames(const pb::OneofDescriptor* oneof) {
    std::string names;
    for (int i = 0; i < oneof->field_count(); ++i) {
      StrAppend(&names, i == 0 ? "" : ", ", oneof->field(i)->name());
    }
    return names;
  }

  absl::Status Charge(const YAML::Node& node, std::string_view path) {
    spent_ += kNodeCost + (node.IsScalar() ? node.Scalar().size() : 0);
    if (spent_ > kMaxExpandedBytes) {
      return Error(
          node, path,
          StrCat("the YAML expands (through aliases) to more than ", kMaxExpandedBytes, " bytes"));
    }
    return absl::OkStatus();
  }

  absl::Status Error(const YAML::Node& node, std::string_view path, std::string_view what) const {
    return absl::InvalidArgumentError(
        StrCat(Where(origin_, node.Mark()), path, path.empty() ? "" : ": ", what));
  }

  std::string origin_;
  size_t spent_ = 0;
};

absl::Status CheckShape(const std::string& yaml, std::string_view origin) {
  std::istringstream stream(yaml);
  YAML::Parser parser(stream);
  ShapeCheck shape;
  int documents = 0;
  while (parser.HandleNextDocument(shape)) {
    if (shape.too_deep()) {
      return absl::InvalidArgumentError(StrCat(Where(origin, *shape.too_deep()),
                                               "nested more than ", kMaxVmSpecYamlDepth,
                                               " levels deep"));
    }
    if (++documents > kMaxVmSpecYamlDocuments) {
      return absl::InvalidArgumentError(
          StrCat(origin, ": more than ", kMaxVmSpecYamlDocuments, " YAML documents"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::VmSpec>> Parse(const std::string& yaml, std::string_view origin) {
  VMLET_RETURN_IF_ERROR(CheckShape(yaml, origin));
  const std::vector<YAML::Node> documents = YAML::LoadAll(yaml);
  Converter converter(origin);
  std::vector<v1::VmSpec> specs;
  for (const YAML::Node& document : documents) {
    if (!document.IsDefined() || document.IsNull()) continue;
    VMLET_RETURN_IF_ERROR(converter.Message(document, "", specs.emplace_back()));
  }
  return specs;
}

// A string that a plain YAML scalar would give to some reader (YAML 1.1 or
// 1.2) as a boolean, null or number: "", "yes", "~", "2.0", "1e3", "0x1f".
bool LooksLikeNonString(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; });
  for (std::string_view word :
       {"", "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"}) {
    if (lower == word) return true;
  }
  std::string_view number = lower;
  if (number.starts_with('+') || number.starts_with('-')) number.remove_prefix(1);
  if (number == ".inf" || number == ".nan" || number.starts_with("0x") ||
      number.starts_with("0o") || number.starts_with("0b")) {
    return true;
  }
  return number.find_first_of("0123456789") != std::string_view::npos &&
         number.find_first_not_of("0123456789._:e+-") == std::string_view::npos;
}

// Multi-line text that a literal block scalar ("|") keeps byte for byte:
// one final newline, no leading blank or indented first line, printable
// characters, tabs and UTF-8 only.
bool FitsLiteralBlock(std::string_view text) {
  if (text.size() < 2 || !text.ends_with('\n') || text.ends_with("\n\n")) return false;
  if (text.front() == ' ' || text.front() == '\t' || text.front() == '\n') return false;
  for (char c : text) {
    const unsigned char byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && c != '\n' && c != '\t') || byte == 0x7f) return false;
  }
  return true;
}

void EmitString(YAML::Emitter& out, const std::string& text) {
  if (FitsLiteralBlock(text)) {
    // Without its final newline: yaml-cpp would indent an empty last line,
    // and the block's default ("clip") chomping restores the newline.
    out << YAML::Literal << text.substr(0, text.size() - 1);
  } else if (LooksLikeNonString(text)) {
    out << YAML::DoubleQuoted << text;
  } else {
    out << text;  // yaml-cpp quotes it when a plain scalar cannot hold it.
  }
}

void EmitMessage(YAML::Emitter& out, const pb::Message& message);

// One value of `field`: element `index` when it is repeated.
void EmitValue(YAML::Emitter& out, const pb::Message& message, const pb::FieldDescriptor* field,
               int index) {
  const pb::Reflection* reflection = message.GetReflection();
  const bool repeated = field->is_repeated();
  switch (field->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      EmitMessage(out, repeated ? reflection->GetRepeatedMessage(message, field, index)
                                : reflection->GetMessage(message, field));
      return;
    case pb::FieldDescriptor::CPPTYPE_STRING:
      EmitString(out, repeated ? reflection->GetRepeatedString(message, field, index)
                               : reflection->GetString(message, field));
      return;
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      out << (repeated ? reflection->GetRepeatedBool(message, field, index)
                       : reflection->GetBool(message, field));
      return;
    case pb::FieldDescriptor::CPPTYPE_INT32:
      out << (repeated ? reflection->GetRepeatedInt32(message, field, index)
                       : reflection->GetInt32(message, field));
      return;
    case pb::FieldDescriptor::CPPTYPE_INT64:
      out << (repeated ? reflection->GetRepeatedInt64(message, field, index)
                       : reflection->GetInt64(message, field));
      return;
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      out << (repeated ? reflection->GetRepeatedUInt32(message, field, index)
                       : reflection->GetUInt32(message, field));
      return;
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      out << (repeated ? reflection->GetRepeatedUInt64(message, field, index)
                       : reflection->GetUInt64(message, field));
      return;
    default:
      out << YAML::Null;  // Not in vmspec.proto; ParseVmSpecYaml reads it as unset.
      return;
  }
}

void EmitMap(YAML::Emitter& out, const pb::Message& message, const pb::FieldDescriptor* field) {
  const pb::Reflection* reflection = message.GetReflection();
  const pb::FieldDescriptor* key_field = field->message_type()->FindFieldByNumber(1);
  const pb::FieldDescriptor* value_field = field->message_type()->FindFieldByNumber(2);
  std::vector<std::pair<std::string, const pb::Message*>> entries;
  for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
    const pb::Message& entry = reflection->GetRepeatedMessage(message, field, i);
    entries.emplace_back(entry.GetReflection()->GetString(entry, key_field), &entry);
  }
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  out << YAML::BeginMap;
  for (const auto& [key, entry] : entries) {
    out << YAML::Key;
    EmitString(out, key);
    out << YAML::Value;
    EmitValue(out, *entry, value_field, 0);
  }
  out << YAML::EndMap;
}

void EmitMessage(YAML::Emitter& out, const pb::Message& message) {
  const pb::Reflection* reflection = message.GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);  // Set fields, by number.
  if (fields.empty()) {
    out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
    return;
  }
  out << YAML::BeginMap;
  for (const pb::FieldDescriptor* field : fields) {
    out << YAML::Key << field->name() << YAML::Value;
    if (field->is_map()) {
      EmitMap(out, message, field);
    } else if (field->is_repeated()) {
      out << YAML::BeginSeq;
      for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
        EmitValue(out, message, field, i);
      }
      out << YAML::EndSeq;
    } else {
      EmitValue(out, message, field, 0);
    }
  }
  out << YAML::EndMap;
}

}  // namespace

absl::StatusOr<std::vector<v1::VmSpec>> ParseVmSpecYaml(std::string_view yaml,
                                                        std::string_view origin) {
  if (yaml.size() > kMaxVmSpecYamlBytes) {
    return absl::InvalidArgumentError(StrCat(origin, ": the YAML is ", yaml.size(),
                                             " bytes: expected at most ", kMaxVmSpecYamlBytes));
  }
  // yaml-cpp reports errors by throwing; none may leave this function.
  try {
    return Parse(std::string(yaml), origin);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(StrCat(Where(origin, e.mark), e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(StrCat(origin, ": reading YAML: ", e.what()));
  }
}

std::string VmSpecToYaml(const v1::VmSpec& spec) {
  // yaml-cpp's emitter reports misuse through its state; it does not throw.
  YAML::Emitter out;
  EmitMessage(out, spec);
  return StrCat(out.c_str(), "\n");
}

}  // namespace vmlet::vmspec
