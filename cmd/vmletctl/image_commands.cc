// `vmletctl image pull|ls|rm|inspect|import`: the node's VM images.
// Listing, removing and inspecting go through the CRI ImageService, which
// shows images as the kubelet sees them; pulling with progress and importing
// a disk file go through vmletd's own Images API on the VM-spec socket.
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <tuple>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "base/str_util.h"
#include "cmd/vmletctl/commands.h"
#include "cmd/vmletctl/flags.h"
#include "cmd/vmletctl/output.h"
#include "cmd/vmletctl/pull_progress.h"

namespace vmlet::ctl {
namespace {

constexpr char kImageUsage[] =
    "usage: vmletctl [options] image COMMAND [ARGS]\n"
    "\n"
    "The node's VM images: pulled from OCI registries or HTTP(S), or imported from\n"
    "disk files. REF is a name (\"vms/debian:12\", \"docker.io/library/x:latest\"), a\n"
    "digest reference or an image id (\"sha256:...\").\n"
    "\n"
    "Commands:\n"
    "  pull REF                 pull an image, with progress on stderr; prints its id\n"
    "  ls                       images on the node (also \"vmletctl images\")\n"
    "  rm REF...                remove images\n"
    "  inspect REF              an image's origin, layout and config, as JSON\n"
    "  import FILE --name REF   store a qcow2 or raw disk file as an image; prints its id\n"
    "\n"
    "Pull and import use vmletd's own API (--vmspec-endpoint), the others the CRI\n"
    "(--endpoint). Run \"vmletctl image COMMAND --help\" for the options of a command.\n";

// The hex digits of an id without "sha256:", cut to 12 as `image ls` shows
// them.
std::string ShortImageId(std::string_view id) {
  if (id.starts_with("sha256:")) id.remove_prefix(7);
  return std::string(id.substr(0, 12));
}

// The info document of a verbose ImageStatus (vmletd puts it under the
// key "info") parsed as JSON; nullopt when absent or not JSON.
std::optional<google::protobuf::Value> ParseInfo(
    const google::protobuf::Map<std::string, std::string>& info) {
  auto it = info.find("info");
  if (it == info.end()) return std::nullopt;
  google::protobuf::Value parsed;
  if (!google::protobuf::util::JsonStringToMessage(it->second, &parsed).ok()) return std::nullopt;
  return parsed;
}

std::string MessageJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

// ---- pull ----

// Whether progress goes to a terminal, and how wide that is (0: unknown).
PullProgressPrinter::Mode ProgressMode(int* width) {
  *width = 0;
  const char* term = std::getenv("TERM");
  if (!::isatty(STDERR_FILENO) || (term != nullptr && std::string_view(term) == "dumb")) {
    return PullProgressPrinter::Mode::kPlain;
  }
  winsize size{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0) *width = size.ws_col;
  return PullProgressPrinter::Mode::kTerminal;
}

// Reads a password from stdin: its first line, without the line end.
std::string ReadPasswordFromStdin() {
  std::string password;
  std::getline(std::cin, password);
  if (password.ends_with('\r')) password.pop_back();
  return password;
}

int Pull(Client& client, Args args) {
  std::string user;
  std::string password;
  std::string creds;
  bool password_stdin = false;
  bool quiet = false;
  FlagSet flags("image pull",
                "usage: vmletctl [options] image pull REF [options]\n"
                "\n"
                "Pulls REF from its registry (or the URL an image_translations rule maps it\n"
                "to) into vmletd's image store. Progress goes to stderr: a bar on a terminal,\n"
                "otherwise a line a second. Only the image id goes to stdout. The pull has no\n"
                "deadline unless the global --timeout is given; interrupting vmletctl does not\n"
                "stop vmletd's pull.\n"
                "\n"
                "Options:\n"
                "  --user USER        registry user name\n"
                "  --password PASS    its password (visible to other users in ps: prefer\n"
                "                     --password-stdin)\n"
                "  --password-stdin   read the password from the first line of stdin\n"
                "  --creds USER:PASS  user name and password in one\n"
                "  -q, --quiet        no progress, only the id\n");
  flags.AddString("--user|-u", &user);
  flags.AddString("--password|-p", &password);
  flags.AddBool("--password-stdin", &password_stdin);
  flags.AddString("--creds", &creds);
  flags.AddBool("--quiet|-q", &quiet);
  if (auto done = flags.Parse(args, 1, 1)) return *done;
  const std::string& ref = flags.positional()[0];
  if (!creds.empty()) {
    if (!user.empty() || !password.empty() || password_stdin) {
      return flags.Error("--creds cannot be combined with --user, --password or --password-stdin");
    }
    const size_t colon = creds.find(':');
    if (colon == std::string::npos || colon == 0) {
      return flags.Error("--creds is invalid: expected USER:PASSWORD");
    }
    user = creds.substr(0, colon);
    password = creds.substr(colon + 1);
  }
  if (password_stdin) {
    if (!password.empty())
      return flags.Error("--password-stdin cannot be combined with --password");
    password = ReadPasswordFromStdin();
  }
  if (user.empty() && (!password.empty() || password_stdin)) {
    return flags.Error("a password needs --user USER");
  }
  if (!user.empty() && password.empty()) {
    return flags.Error(
        StrCat("--user \"", user, "\" needs a password: --password, --password-stdin or --creds"));
  }

  vmspec_v1::PullImageRequest request;
  request.set_image(ref);
  if (!user.empty()) {
    request.mutable_auth()->set_username(user);
    request.mutable_auth()->set_password(password);
  }
  grpc::ClientContext context;
  client.SetDeadline(context, CallKind::kTransfer);
  std::unique_ptr<grpc::ClientReader<vmspec_v1::PullImageProgress>> reader =
      client.Images().PullImage(&context, request);

  int width = 0;
  const PullProgressPrinter::Mode mode = ProgressMode(&width);
  std::optional<PullProgressPrinter> printer;
  if (!quiet) printer.emplace(stderr, mode, width, ProgressClock::now());
  std::string image_id;
  vmspec_v1::PullImageProgress progress;
  while (reader->Read(&progress)) {
    if (!progress.image_id().empty()) image_id = progress.image_id();
    if (printer.has_value()) {
      printer->Update({.phase = progress.phase(),
                       .bytes_done = progress.bytes_done(),
                       .bytes_total = progress.bytes_total()},
                      ProgressClock::now());
    }
  }
  grpc::Status status = reader->Finish();
  if (printer.has_value()) printer->Finish(status.ok() && !image_id.empty(), ProgressClock::now());
  if (!status.ok()) return FailRpc(StrCat("PullImage \"", ref, "\""), status);
  if (image_id.empty()) {
    return Fail(StrCat("PullImage \"", ref, "\": vmletd ended the pull without an image id"));
  }
  std::printf("%s\n", image_id.c_str());
  return kExitOk;
}

// ---- ls ----

struct ImageRow {
  v1::Image image;
  std::string name;    // The first tag, or "<none>".
  std::string layout;  // "disk", "kernel", "container", or "" when unknown.
};

// The image's layout from its verbose status; "" if vmletd does not say.
std::string Layout(Client& client, const std::string& id) {
  v1::ImageStatusRequest request;
  request.mutable_image()->set_image(id);
  request.set_verbose(true);
  v1::ImageStatusResponse response;
  // Removed since the list, or an old vmletd: no layout, but no failure.
  if (!client.Image(&v1::ImageService::Stub::ImageStatus, request, &response).ok()) return "";
  std::optional<google::protobuf::Value> info = ParseInfo(response.info());
  if (!info.has_value()) return "";
  const auto& fields = info->struct_value().fields();
  auto it = fields.find("layout");
  return it != fields.end() ? it->second.string_value() : "";
}

// The digest of a repo digest ("host/repo@sha256:..." -> "sha256:...").
std::string DigestOf(const std::string& repo_digest) {
  const size_t at = repo_digest.find('@');
  return at == std::string::npos ? repo_digest : repo_digest.substr(at + 1);
}

void PrintImages(const std::vector<ImageRow>& rows, std::string_view format) {
  std::string json = "{\"images\":[";
  for (size_t i = 0; i < rows.size(); ++i) {
    const v1::Image& image = rows[i].image;
    auto list = [](const auto& items) {
      std::string out = "[";
      for (int j = 0; j < items.size(); ++j)
        StrAppend(&out, j == 0 ? "" : ",", JsonQuote(items[j]));
      return out + "]";
    };
    StrAppend(&json, i == 0 ? "" : ",",                         //
              "{\"id\":", JsonQuote(image.id()),                //
              ",\"repoTags\":", list(image.repo_tags()),        //
              ",\"repoDigests\":", list(image.repo_digests()),  //
              ",\"size\":", image.size(),                       //
              ",\"layout\":", JsonQuote(rows[i].layout),        //
              ",\"pinned\":", image.pinned() ? "true" : "false", "}");
  }
  json += "]}";
  PrintStructured(json, format);
}

}  // namespace

int ListImages(Client& client, Args args) {
  std::string output = client.options().output;
  bool digests = false;
  bool quiet = false;
  FlagSet flags("image ls",
                "usage: vmletctl [options] image ls [options]\n"
                "\n"
                "The images on the node: name (the first tag), id, size on disk and layout\n"
                "(disk: a disk image; kernel: a kernel and initrd; container: a container\n"
                "filesystem). Also \"vmletctl images\".\n"
                "\n"
                "Options:\n"
                "  -o FORMAT     table, json or yaml\n"
                "  --digests     show the repo digests\n"
                "  -q, --quiet   only the full image ids, one a line\n");
  flags.AddOutput(&output);
  flags.AddBool("--digests", &digests);
  flags.AddBool("--quiet|-q", &quiet);
  if (auto done = flags.Parse(args, 0, 0)) return *done;

  v1::ListImagesResponse response;
  grpc::Status status =
      client.Image(&v1::ImageService::Stub::ListImages, v1::ListImagesRequest(), &response);
  if (!status.ok()) return FailRpc("ListImages", status);
  std::vector<ImageRow> rows;
  for (const v1::Image& image : response.images()) {
    ImageRow row{.image = image,
                 .name = image.repo_tags().empty() ? "<none>" : image.repo_tags(0),
                 .layout = quiet ? "" : Layout(client, image.id())};
    rows.push_back(std::move(row));
  }
  // By name, untagged images last.
  std::sort(rows.begin(), rows.end(), [](const ImageRow& a, const ImageRow& b) {
    return std::tuple(a.image.repo_tags().empty(), a.name, a.image.id()) <
           std::tuple(b.image.repo_tags().empty(), b.name, b.image.id());
  });

  if (quiet) {
    for (const ImageRow& row : rows) std::printf("%s\n", row.image.id().c_str());
    return kExitOk;
  }
  if (output != "table") {
    PrintImages(rows, output);
    return kExitOk;
  }
  std::vector<std::string> header = {"IMAGE", "ID", "SIZE", "LAYOUT"};
  if (digests) header.insert(header.begin() + 1, "DIGEST");
  Table table(std::move(header));
  for (const ImageRow& row : rows) {
    std::vector<std::string> cells = {row.name, ShortImageId(row.image.id()),
                                      FormatBytes(row.image.size()),
                                      row.layout.empty() ? "-" : row.layout};
    if (digests) {
      cells.insert(cells.begin() + 1, row.image.repo_digests().empty()
                                          ? "<none>"
                                          : DigestOf(row.image.repo_digests(0)));
    }
    table.AddRow(std::move(cells));
  }
  table.Print();
  return kExitOk;
}

namespace {

// ---- rm ----

// The image `ref` names, through ImageStatus; reports and returns nullopt
// when it is absent or the call fails.
std::optional<v1::Image> FindImage(Client& client, const std::string& ref, bool verbose,
                                   v1::ImageStatusResponse* response) {
  v1::ImageStatusRequest request;
  request.mutable_image()->set_image(ref);
  request.set_verbose(verbose);
  grpc::Status status = client.Image(&v1::ImageService::Stub::ImageStatus, request, response);
  if (!status.ok()) {
    FailRpc(StrCat("ImageStatus \"", ref, "\""), status);
    return std::nullopt;
  }
  // The CRI says "absent" with an unset image, not with NOT_FOUND.
  if (!response->has_image()) {
    Fail(StrCat("image \"", ref, "\" not found"));
    return std::nullopt;
  }
  return response->image();
}

// Removes one image; false after reporting a failure.
bool RemoveOne(Client& client, const std::string& ref) {
  v1::ImageStatusResponse found;
  std::optional<v1::Image> image = FindImage(client, ref, /*verbose=*/false, &found);
  if (!image.has_value()) return false;
  v1::RemoveImageRequest request;
  request.mutable_image()->set_image(ref);
  v1::RemoveImageResponse response;
  grpc::Status status =
      client.Image(&v1::ImageService::Stub::RemoveImage, request, &response, CallKind::kChange);
  if (!status.ok()) {
    FailRpc(StrCat("RemoveImage \"", ref, "\""), status);
    return false;
  }
  // Removing one of several tags only drops that tag.
  v1::ImageStatusRequest again;
  again.mutable_image()->set_image(image->id());
  v1::ImageStatusResponse after;
  if (client.Image(&v1::ImageService::Stub::ImageStatus, again, &after).ok() && after.has_image()) {
    std::printf("untagged %s (image %s keeps its other names)\n", ref.c_str(),
                ShortImageId(image->id()).c_str());
  } else {
    std::printf("removed %s (%s)\n", ref.c_str(), image->id().c_str());
  }
  return true;
}

int Remove(Client& client, Args args) {
  FlagSet flags("image rm",
                "usage: vmletctl [options] image rm REF...\n"
                "\n"
                "Removes each image REF names. A name of an image that has others only loses\n"
                "that name; an id removes the image. The files of an image that a VM still\n"
                "uses are deleted when that VM is removed. Exits 1 if any REF failed.\n");
  if (auto done = flags.Parse(args, 1, std::numeric_limits<size_t>::max())) return *done;
  const std::vector<std::string>& refs = flags.positional();
  std::string failed;
  size_t failures = 0;
  for (const std::string& ref : refs) {
    if (RemoveOne(client, ref)) continue;
    StrAppend(&failed, failures == 0 ? "" : ", ", "\"", ref, "\"");
    ++failures;
  }
  if (failures == 0) return kExitOk;
  if (refs.size() > 1) {
    return Fail(StrCat("could not remove ", failures, " of ", refs.size(), " images: ", failed));
  }
  return kExitFailure;
}

// ---- inspect ----

int Inspect(Client& client, Args args) {
  FlagSet flags("image inspect",
                "usage: vmletctl [options] image inspect REF [-o json|yaml]\n"
                "\n"
                "The image REF names, as JSON (or YAML): \"image\" as the CRI describes it,\n"
                "and \"info\" with its source (registry, http, import, local), origin,\n"
                "layout (disk, kernel, container), filesystem and config (user, entrypoint,\n"
                "cmd, env, working_dir, labels). Exits 1 if there is no such image.\n");
  std::string output = client.options().output == "yaml" ? "yaml" : "json";
  flags.AddChoice("-o|--output", &output, {"json", "yaml"});
  if (auto done = flags.Parse(args, 1, 1)) return *done;
  const std::string& ref = flags.positional()[0];
  v1::ImageStatusResponse response;
  std::optional<v1::Image> image = FindImage(client, ref, /*verbose=*/true, &response);
  if (!image.has_value()) return kExitFailure;

  std::string info;
  if (auto it = response.info().find("info"); it != response.info().end()) {
    info = ParseInfo(response.info()).has_value() ? it->second : JsonQuote(it->second);
  } else {
    // Not vmletd's shape: every key, each value embedded as JSON if it is.
    info = "{";
    for (const auto& [key, value] :
         std::map<std::string, std::string>(response.info().begin(), response.info().end())) {
      google::protobuf::Value parsed;
      const bool is_json = google::protobuf::util::JsonStringToMessage(value, &parsed).ok();
      StrAppend(&info, info.size() == 1 ? "" : ",", JsonQuote(key), ":",
                is_json ? value : JsonQuote(value));
    }
    info += "}";
  }
  PrintStructured(StrCat("{\"image\":", MessageJson(*image), ",\"info\":", info, "}"), output);
  return kExitOk;
}

// ---- import ----

int Import(Client& client, Args args) {
  std::string name;
  FlagSet flags("image import",
                "usage: vmletctl [options] image import FILE --name REF\n"
                "\n"
                "Stores the qcow2 or raw disk file FILE as the image REF (a disk layout), for\n"
                "nodes without a registry. vmletd reads FILE itself, by its absolute path, so\n"
                "it must be on vmletd's machine and readable by it. Prints the image id. No\n"
                "deadline unless the global --timeout is given.\n"
                "\n"
                "Options:\n"
                "  --name REF   the image's name, e.g. vms/debian:12 (required)\n");
  flags.AddString("--name", &name);
  if (auto done = flags.Parse(args, 1, 1)) return *done;
  if (name.empty()) return flags.Error("--name is required: the image's name, e.g. vms/debian:12");
  const std::string& file = flags.positional()[0];

  std::error_code error;
  std::string path = std::filesystem::absolute(file, error).lexically_normal().string();
  if (error) path = file;
  char resolved[PATH_MAX];
  if (::realpath(file.c_str(), resolved) != nullptr) {
    path = resolved;
    struct stat info {};
    if (::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
      return Fail(
          StrCat("importing \"", path, "\": a directory, expected a qcow2 or raw disk file"));
    }
  } else if (errno == ENOENT || errno == ENOTDIR) {
    return Fail(StrCat("importing \"", path, "\": ", std::strerror(errno)));
  }
  // Other errors (e.g. EACCES for this user): vmletd may still read it.

  vmspec_v1::ImportImageRequest request;
  request.set_path(path);
  request.set_name(name);
  vmspec_v1::ImportImageResponse response;
  grpc::Status status = client.Call(client.Images(), &vmspec_v1::Images::Stub::ImportImage, request,
                                    &response, CallKind::kTransfer);
  if (!status.ok()) return FailRpc(StrCat("ImportImage \"", path, "\" as \"", name, "\""), status);
  std::printf("%s\n", response.image_id().c_str());
  return kExitOk;
}

}  // namespace

int ImageCommand(Client& client, Args args) {
  if (args.empty()) {
    std::fputs(kImageUsage, stderr);
    return kExitUsage;
  }
  const std::string& command = args[0];
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kImageUsage, stdout);
    return kExitOk;
  }
  using Handler = int (*)(Client&, Args);
  static const std::map<std::string, Handler, std::less<>> kCommands = {
      {"pull", Pull}, {"ls", ListImages},   {"list", ListImages},
      {"rm", Remove}, {"inspect", Inspect}, {"import", Import},
  };
  auto it = kCommands.find(command);
  if (it == kCommands.end()) {
    return UsageError("image", StrCat("unknown command \"image ", command, "\""));
  }
  return it->second(client, args.subspan(1));
}

}  // namespace vmlet::ctl
