// Reading and writing one persisted record: protobuf JSON in a file written
// atomically (temp file, fsync, rename).
#ifndef VMLET_CRI_STORE_RECORD_FILE_H_
#define VMLET_CRI_STORE_RECORD_FILE_H_

#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vmlet::cri::store {

absl::Status WriteRecordFile(const std::string& path, const google::protobuf::Message& record);
absl::Status ReadRecordFile(const std::string& path, google::protobuf::Message& record);

// Paths of the record files ("<id>.json") in `dir`, created if missing.
// Leftover temporary files of interrupted writes are deleted; files that do
// not parse are renamed to "<name>.corrupt" by the caller (see MoveAside).
absl::StatusOr<std::vector<std::string>> ListRecordFiles(const std::string& dir);

// Renames an unreadable record to "<path>.corrupt" so that it is kept for a
// human but no longer loaded.
absl::Status MoveAside(const std::string& path);

}  // namespace vmlet::cri::store

#endif  // VMLET_CRI_STORE_RECORD_FILE_H_
