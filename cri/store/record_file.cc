#include "cri/store/record_file.h"

#include <cstdio>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/match.h"
#include "base/file_util.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::cri::store {

absl::Status WriteRecordFile(const std::string& path, const google::protobuf::Message& record) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(record, &json, options);
  if (!status.ok()) {
    return absl::InternalError(StrCat("encoding record \"", path, "\": ", status.ToString()));
  }
  return WriteFileAtomically(path, json);
}

absl::Status ReadRecordFile(const std::string& path, google::protobuf::Message& record) {
  VMLET_ASSIGN_OR_RETURN(std::string json, ReadFile(path));
  google::protobuf::util::JsonParseOptions options;
  // A record written by a newer vmletd still loads after a downgrade.
  options.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(json, &record, options);
  if (!status.ok()) {
    return absl::DataLossError(StrCat("record \"", path, "\" does not parse: ", status.ToString()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ListRecordFiles(const std::string& dir) {
  VMLET_RETURN_IF_ERROR(MakeDirs(dir, 0700));
  VMLET_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(dir));
  std::vector<std::string> paths;
  for (const std::string& name : names) {
    std::string path = StrCat(dir, "/", name);
    if (absl::StrContains(name, ".tmp-")) {
      VMLET_RETURN_IF_ERROR(RemoveFileIfExists(path));
    } else if (absl::EndsWith(name, ".json")) {
      paths.push_back(std::move(path));
    }
  }
  return paths;
}

absl::Status MoveAside(const std::string& path) {
  std::string target = StrCat(path, ".corrupt");
  if (std::rename(path.c_str(), target.c_str()) != 0) {
    return ErrnoToStatus(errno, StrCat("moving \"", path, "\" aside"));
  }
  return absl::OkStatus();
}

}  // namespace vmlet::cri::store
