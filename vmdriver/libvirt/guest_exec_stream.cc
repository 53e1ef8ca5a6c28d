#include "vmdriver/libvirt/guest_exec_stream.h"

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "base/id.h"
#include "base/logging.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::vmdriver::libvirt {
namespace {

using Json = nlohmann::json;

constexpr Logger kLog("libvirt");

// The private directory of one exec in the guest: this prefix and
// kDirRandomHex random hex digits.
constexpr char kDirPrefix[] = "/tmp/.vmlet-exec-";
constexpr size_t kDirRandomHex = 16;
// How long the short commands of the relay (setup, kill, removal) may run.
constexpr absl::Duration kHelperTimeout = absl::Seconds(30);
constexpr absl::Duration kHelperFirstPoll = absl::Milliseconds(10);
constexpr absl::Duration kHelperMaxPoll = absl::Milliseconds(100);
// How often a command that was sent a signal is looked at.
constexpr absl::Duration kKillPoll = absl::Milliseconds(20);
// stdin writes per round of the relay: a pipe's capacity (64 KiB).
constexpr int kMaxWritesPerRound = 16;
// The command as quoted in messages is cut after this many bytes.
constexpr size_t kMaxQuotedCommand = 200;
// Replies quoted in messages are cut after this many bytes.
constexpr size_t kMaxQuotedReply = 200;

// argv joined by spaces, for messages.
std::string Quoted(const std::vector<std::string>& argv) {
  std::string text;
  for (size_t i = 0; i < argv.size(); ++i) StrAppend(&text, i == 0 ? "" : " ", argv[i]);
  if (text.size() > kMaxQuotedCommand) text = StrCat(text.substr(0, kMaxQuotedCommand), "...");
  return StrCat("\"", text, "\"");
}

// `text` as one word for sh, in single quotes.
std::string ShellQuote(std::string_view text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted.push_back(c);
    }
  }
  quoted.push_back('\'');
  return quoted;
}

// Whether `text` is well-formed UTF-8 (the agent's JSON carries text only).
bool IsUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char lead = static_cast<unsigned char>(text[i]);
    size_t length = 0;
    uint32_t code = 0;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code = lead & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      const unsigned char next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    // Overlong forms, surrogates and values beyond Unicode.
    constexpr uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < kMinimum[length] || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) {
      return false;
    }
    i += length;
  }
  return true;
}

// An agent that cannot be reached any more: not connected, the VM stopped,
// no answer in time, or libvirtd gone. Nothing more is sent to it.
bool Unreachable(const absl::Status& status) {
  return absl::IsFailedPrecondition(status) || absl::IsUnavailable(status) ||
         absl::IsDeadlineExceeded(status);
}

// Reads read_stdin on a thread of its own into a bounded buffer that the
// exec takes from. Stop ends the thread: it calls cancel_stdin, which makes
// a read_stdin in progress return, and joins the thread. The thread shares
// ownership of the pump: without a cancel_stdin (which vm_driver.h
// requires) it is detached instead, and ends after the read_stdin call in
// progress.
class StdinPump {
 public:
  StdinPump(std::function<absl::StatusOr<std::string>()> read, std::function<void()> cancel)
      : read_(std::move(read)), cancel_(std::move(cancel)) {}

  static std::shared_ptr<StdinPump> Start(const ExecStreams& streams) {
    auto pump = std::make_shared<StdinPump>(streams.read_stdin, streams.cancel_stdin);
    pump->thread_ = std::thread([pump] { pump->Run(); });
    return pump;
  }

  // Exec thread: appends up to `max` bytes of input to `out`.
  void Take(size_t max, std::string* out) {
    std::lock_guard lock(mu_);
    const size_t n = std::min(max, data_.size());
    out->append(data_, 0, n);
    data_.erase(0, n);
    cv_.notify_all();
  }

  // Exec thread: whether the input has ended and all of it was taken.
  bool Ended() {
    std::lock_guard lock(mu_);
    return eof_ && data_.empty();
  }

  // Exec thread: waits `timeout`, or less when `wake_on_input` and input
  // (or its end) is there; true when woken by input.
  bool Wait(absl::Duration timeout, bool wake_on_input) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoMicroseconds(timeout),
                        [&] { return wake_on_input && (!data_.empty() || eof_); });
  }

  // Exec thread: ends the pump's thread; read_stdin is not called again
  // after this returns. Later calls do nothing.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
      cv_.notify_all();
    }
    if (!thread_.joinable()) return;
    if (cancel_) {
      cancel_();
      thread_.join();
    } else {
      thread_.detach();
    }
  }

 private:
  // The pump's thread.
  void Run() {
    while (true) {
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopped_ || data_.size() < kMaxPendingStdinBytes; });
        if (stopped_) return;
      }
      absl::StatusOr<std::string> chunk = read_();
      std::lock_guard lock(mu_);
      if (stopped_) return;
      if (!chunk.ok() || chunk->empty()) {  // An error ends the input as its end does.
        eof_ = true;
        cv_.notify_all();
        return;
      }
      data_ += *chunk;
      cv_.notify_all();
    }
  }

  const std::function<absl::StatusOr<std::string>()> read_;
  const std::function<void()> cancel_;
  std::thread thread_;  // Exec thread only.
  std::mutex mu_;
  std::condition_variable cv_;
  std::string data_;      // Read, not taken yet. Guarded by mu_.
  bool eof_ = false;      // Guarded by mu_.
  bool stopped_ = false;  // Guarded by mu_.
};

// One streaming exec; lives on the calling thread of StreamInGuest.
class GuestStreamExec {
 public:
  GuestStreamExec(const AgentCommand& agent, std::string_view vm_name,
                  const std::vector<std::string>& argv, const ExecStreams& streams,
                  const StreamExecOptions& options)
      : agent_(agent),
        argv_(argv),
        streams_(streams),
        options_(options),
        what_(StrCat("running ", Quoted(argv), " in VM \"", vm_name, "\"")),
        dir_(StrCat(kDirPrefix, GenerateId().substr(0, kDirRandomHex))) {}

  ~GuestStreamExec() {
    if (pump_) pump_->Stop();  // Not stopped yet only when Run was left early.
  }

  absl::StatusOr<int> Run();

 private:
  // One agent command; the raw reply. Once the agent is unreachable, every
  // later call fails at once with the same status.
  absl::StatusOr<std::string> Send(const Json& command);
  // The "return" member of the reply to `execute` with `arguments`.
  absl::StatusOr<Json> Call(std::string_view execute, Json arguments);
  // Runs a short helper command and waits for it; nullopt when the agent
  // could not start it (no such program).
  absl::StatusOr<std::optional<ExecResult>> RunHelper(const std::vector<std::string>& argv);
  // The exit code (128 + signal) once process `pid` has exited.
  absl::StatusOr<std::optional<int>> ExitCode(int64_t pid);
  absl::StatusOr<int64_t> Open(std::string_view name, std::string_view mode);
  absl::StatusOr<std::string> Read(int64_t handle);
  // Writes `bytes` (at most kStreamWriteBytes) into the FIFO; false when
  // the pipe is full and nothing was written.
  absl::StatusOr<bool> WriteFifo(int64_t handle, std::string_view bytes);
  void Close(std::optional<int64_t>& handle);

  // Steps 2 to 5 of guest_exec_stream.h; the caller cleans up.
  absl::StatusOr<int> Stream();
  // The buffered fallback.
  absl::StatusOr<int> Buffered(std::string_view why);
  // Ends a command that still runs: SIGTERM, then SIGKILL.
  void EndCommand();
  // Closes the handles and removes the directory, as far as the agent can.
  void CleanUp();

  const AgentCommand& agent_;
  const std::vector<std::string>& argv_;
  const ExecStreams& streams_;
  const StreamExecOptions& options_;
  const std::string what_;
  const std::string dir_;

  absl::Status unreachable_;  // Set once the agent could not be reached.
  bool dir_made_ = false;
  // The files could not be opened (the agent refuses guest-file-*).
  bool files_refused_ = false;
  std::optional<int64_t> in_, out_, err_;  // Agent file handles.
  std::optional<int64_t> pid_;
  bool exited_ = false;
  std::shared_ptr<StdinPump> pump_;
};

absl::StatusOr<std::string> GuestStreamExec::Send(const Json& command) {
  if (!unreachable_.ok()) return unreachable_;
  // Run checked argv; the replacement of bad UTF-8 only keeps dump() from
  // throwing.
  absl::StatusOr<std::string> reply =
      agent_(command.dump(-1, ' ', false, Json::error_handler_t::replace), options_.agent_timeout);
  if (!reply.ok() && Unreachable(reply.status())) unreachable_ = reply.status();
  return reply;
}

absl::StatusOr<Json> GuestStreamExec::Call(std::string_view execute, Json arguments) {
  Json command = {{"execute", execute}};
  if (!arguments.is_null()) command["arguments"] = std::move(arguments);
  VMLET_ASSIGN_OR_RETURN(std::string reply, Send(command));
  Json parsed = Json::parse(reply, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object() || !parsed.contains("return")) {
    return absl::InternalError(
        StrCat("the guest agent's reply to ", execute,
               " is not a {\"return\": ...} object: ", reply.substr(0, kMaxQuotedReply)));
  }
  return std::move(parsed["return"]);
}

absl::StatusOr<std::optional<ExecResult>> GuestStreamExec::RunHelper(
    const std::vector<std::string>& argv) {
  absl::StatusOr<std::string> reply = Send(Json::parse(GuestExecCommand(argv)));
  if (absl::IsInternal(reply.status())) return std::nullopt;  // The agent could not start it.
  VMLET_RETURN_IF_ERROR(reply.status());
  Json parsed = Json::parse(*reply, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object() || !parsed.contains("return") || !parsed["return"].is_object() ||
      !parsed["return"].contains("pid") || !parsed["return"]["pid"].is_number_integer()) {
    return absl::InternalError(StrCat("the guest agent's reply to guest-exec has no pid: ",
                                      reply->substr(0, kMaxQuotedReply)));
  }
  const int64_t pid = parsed["return"]["pid"].get<int64_t>();
  const absl::Time deadline = absl::Now() + kHelperTimeout;
  absl::Duration poll = kHelperFirstPoll;
  while (true) {
    VMLET_ASSIGN_OR_RETURN(std::string status, Send(Json{{"execute", "guest-exec-status"},
                                                         {"arguments", {{"pid", pid}}}}));
    VMLET_ASSIGN_OR_RETURN(std::optional<ExecResult> result, ParseGuestExecStatus(status));
    if (result) return result;
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(StrCat("helper command ", Quoted(argv),
                                                " did not finish within ",
                                                absl::FormatDuration(kHelperTimeout)));
    }
    std::this_thread::sleep_for(absl::ToChronoMicroseconds(poll));
    poll = std::min(poll * 2, kHelperMaxPoll);
  }
}

absl::StatusOr<std::optional<int>> GuestStreamExec::ExitCode(int64_t pid) {
  VMLET_ASSIGN_OR_RETURN(std::string reply, Send(Json{{"execute", "guest-exec-status"},
                                                      {"arguments", {{"pid", pid}}}}));
  VMLET_ASSIGN_OR_RETURN(std::optional<ExecResult> result, ParseGuestExecStatus(reply));
  if (!result) return std::nullopt;
  return result->exit_code;
}

absl::StatusOr<int64_t> GuestStreamExec::Open(std::string_view name, std::string_view mode) {
  const std::string path = StrCat(dir_, "/", name);
  VMLET_ASSIGN_OR_RETURN(Json handle, Call("guest-file-open", {{"path", path}, {"mode", mode}}));
  if (!handle.is_number_integer()) {
    return absl::InternalError(
        StrCat("guest-file-open of \"", path, "\": the reply is not a handle: ", handle.dump()));
  }
  return handle.get<int64_t>();
}

absl::StatusOr<std::string> GuestStreamExec::Read(int64_t handle) {
  VMLET_ASSIGN_OR_RETURN(
      Json read, Call("guest-file-read", {{"handle", handle}, {"count", kStreamReadBytes}}));
  if (!read.is_object() || !read.contains("count") || !read["count"].is_number_unsigned()) {
    return absl::InternalError(
        StrCat("guest-file-read: the reply has no \"count\": ", read.dump().substr(0, 200)));
  }
  std::string data;
  if (read.contains("buf-b64")) {
    if (!read["buf-b64"].is_string() ||
        !absl::Base64Unescape(read["buf-b64"].get_ref<const std::string&>(), &data)) {
      return absl::InternalError("guest-file-read: \"buf-b64\" is not a base64 string");
    }
  }
  if (data.size() != read["count"].get<uint64_t>() || data.size() > kStreamReadBytes) {
    return absl::InternalError(StrCat("guest-file-read: \"count\" is ", read["count"].dump(),
                                      " but \"buf-b64\" holds ", data.size(), " bytes (asked for ",
                                      kStreamReadBytes, ")"));
  }
  return data;
}

absl::StatusOr<bool> GuestStreamExec::WriteFifo(int64_t handle, std::string_view bytes) {
  // Only fills the stdio buffer (see guest_exec_stream.h): fails only for
  // a real error.
  VMLET_ASSIGN_OR_RETURN(
      Json wrote, Call("guest-file-write",
                       {{"handle", handle}, {"buf-b64", absl::Base64Escape(std::string(bytes))}}));
  if (!wrote.is_object() || !wrote.contains("count") || !wrote["count"].is_number_unsigned() ||
      wrote["count"].get<uint64_t>() != bytes.size()) {
    return absl::InternalError(StrCat("guest-file-write of ", bytes.size(),
                                      " bytes to stdin: unexpected reply ",
                                      wrote.dump().substr(0, kMaxQuotedReply)));
  }
  absl::StatusOr<Json> flushed = Call("guest-file-flush", {{"handle", handle}});
  if (flushed.ok()) return true;
  if (!absl::IsInternal(flushed.status())) return flushed.status();
  // EAGAIN: the pipe is full; nothing of the at most PIPE_BUF bytes was
  // written and stdio dropped them. Clear the stream's error flag, which the
  // agent leaves set after a failed flush: a write of 0 bytes reports it
  // (an error, expected) and clears it.
  absl::StatusOr<Json> cleared =
      Call("guest-file-write", {{"handle", handle}, {"buf-b64", "AA=="}, {"count", 0}});
  if (!cleared.ok() && !absl::IsInternal(cleared.status())) return cleared.status();
  return false;
}

void GuestStreamExec::Close(std::optional<int64_t>& handle) {
  if (!handle) return;
  if (absl::StatusOr<Json> closed = Call("guest-file-close", {{"handle", *handle}});
      !closed.ok() && unreachable_.ok()) {
    kLog.Warning("{}: closing guest agent file handle {}: {}", what_, *handle,
                 closed.status().message());
  }
  handle.reset();
}

absl::StatusOr<int> GuestStreamExec::Run() {
  if (argv_.empty()) {
    return absl::InvalidArgumentError("argv: empty: expected the command to run in the guest");
  }
  for (size_t i = 0; i < argv_.size(); ++i) {
    if (!IsUtf8(argv_[i]) || argv_[i].find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          StrCat("argv[", i,
                 "]: not UTF-8 text without NUL bytes: the guest agent takes the "
                 "command as JSON text"));
    }
  }
  const bool with_stdin = static_cast<bool>(streams_.read_stdin);
  std::string setup = StrCat("d=", ShellQuote(dir_),
                             "; mkdir -m 700 \"$d\" || exit 1; if : >\"$d/out\" && : >\"$d/err\"");
  if (with_stdin) StrAppend(&setup, " && mkfifo -m 600 \"$d/in\"");
  StrAppend(&setup, "; then exit 0; fi; rm -rf \"$d\"; exit 1");
  absl::StatusOr<std::optional<ExecResult>> made = RunHelper({"/bin/sh", "-c", setup});
  if (!made.ok()) return Annotate(made.status(), what_);
  if (!*made) return Buffered("the guest agent cannot start /bin/sh");
  if ((*made)->exit_code != 0) {
    return Buffered(StrCat("making ", dir_, " failed with exit code ", (*made)->exit_code, ": ",
                           (*made)->stderr_data.substr(0, kMaxQuotedReply)));
  }
  dir_made_ = true;

  absl::StatusOr<int> exit_code = Stream();
  if (pump_) pump_->Stop();  // The command has ended, or is about to.
  if (!exit_code.ok()) EndCommand();
  CleanUp();
  if (files_refused_) {
    return Buffered(
        StrCat("the guest agent refuses guest-file-open: ", exit_code.status().message()));
  }
  if (!exit_code.ok()) return Annotate(exit_code.status(), what_);
  return exit_code;
}

absl::StatusOr<int> GuestStreamExec::Stream() {
  for (auto [handle, name, mode] : {std::tuple{&in_, "in", "r+"}, std::tuple{&out_, "out", "r"},
                                    std::tuple{&err_, "err", "r"}}) {
    if (handle == &in_ && !streams_.read_stdin) continue;
    absl::StatusOr<int64_t> opened = Open(name, mode);
    if (!opened.ok()) {
      files_refused_ = absl::IsInternal(opened.status());
      return opened.status();
    }
    *handle = *opened;
  }

  const std::string script =
      StrCat("exec \"$@\" <", in_ ? ShellQuote(StrCat(dir_, "/in")) : "/dev/null", " >",
             ShellQuote(StrCat(dir_, "/out")), " 2>", ShellQuote(StrCat(dir_, "/err")));
  std::vector<std::string> args = {"-c", script, "sh"};
  args.insert(args.end(), argv_.begin(), argv_.end());
  absl::StatusOr<Json> started = Call("guest-exec", {{"path", "/bin/sh"}, {"arg", args}});
  if (absl::IsInternal(started.status())) {
    return absl::FailedPreconditionError(
        StrCat("the guest agent could not start the command: ", started.status().message()));
  }
  VMLET_RETURN_IF_ERROR(started.status());
  if (!started->is_object() || !started->contains("pid") ||
      !(*started)["pid"].is_number_integer()) {
    return absl::InternalError(
        StrCat("the guest agent's reply to guest-exec has no pid: ", started->dump()));
  }
  pid_ = (*started)["pid"].get<int64_t>();
  if (in_) pump_ = StdinPump::Start(streams_);

  int exit_code = 0;
  std::string pending;  // stdin taken from the pump, not yet in the FIFO.
  absl::Duration poll = options_.fast_poll;
  while (true) {
    if (streams_.client_gone && streams_.client_gone()) {
      return absl::CancelledError(StrCat(what_, ": the client has gone"));
    }
    // Looked at before the reads, so that the reads after the exit reach the
    // ends of the files.
    if (!exited_) {
      VMLET_ASSIGN_OR_RETURN(std::optional<int> code, ExitCode(*pid_));
      if (code) {
        exited_ = true;
        exit_code = *code;
      }
    }
    bool more = false;  // A read was full: more may be waiting.
    bool progress = false;
    for (auto [handle, write, name] : {std::tuple{*out_, &streams_.write_stdout, "stdout"},
                                       std::tuple{*err_, &streams_.write_stderr, "stderr"}}) {
      VMLET_ASSIGN_OR_RETURN(std::string data, Read(handle));
      if (data.empty()) continue;
      progress = true;
      more = more || data.size() == kStreamReadBytes;
      if (*write) VMLET_RETURN_IF_ERROR(Annotate((*write)(data), StrCat("relaying ", name)));
    }
    if (exited_) {
      if (more) continue;
      return exit_code;
    }

    if (in_) {
      for (int i = 0; i < kMaxWritesPerRound; ++i) {
        if (pending.empty()) pump_->Take(kStreamWriteBytes, &pending);
        if (pending.empty()) break;
        VMLET_ASSIGN_OR_RETURN(bool written, WriteFifo(*in_, pending));
        if (!written) break;  // The pipe is full: later.
        pending.clear();
        progress = true;
      }
      if (pending.empty() && pump_->Ended()) {
        Close(in_);  // The command reads end of file.
        VMLET_RETURN_IF_ERROR(unreachable_);
        progress = true;
      }
    }

    if (more) continue;
    poll = progress ? options_.fast_poll : std::min(poll * 2, options_.idle_poll);
    if (pump_ != nullptr && pump_->Wait(poll, in_.has_value() && pending.empty())) {
      poll = options_.fast_poll;  // Input arrived: the command may answer soon.
    } else if (pump_ == nullptr) {
      std::this_thread::sleep_for(absl::ToChronoMicroseconds(poll));
    }
  }
}

void GuestStreamExec::EndCommand() {
  if (!pid_ || exited_ || !unreachable_.ok()) return;
  Close(in_);
  for (const char* signal : {"TERM", "KILL"}) {
    absl::StatusOr<std::optional<ExecResult>> sent =
        RunHelper({"/bin/sh", "-c", StrCat("kill -", signal, " ", *pid_)});
    if (!sent.ok()) {
      kLog.Warning("{}: sending SIG{} to pid {}: {}", what_, signal, *pid_,
                   sent.status().message());
      return;
    }
    const absl::Time deadline = absl::Now() + options_.kill_grace;
    while (true) {
      absl::StatusOr<std::optional<int>> code = ExitCode(*pid_);
      if (!code.ok()) {
        kLog.Warning("{}: waiting for pid {} to end: {}", what_, *pid_, code.status().message());
        return;
      }
      if (*code) {
        exited_ = true;
        kLog.Info("{}: ended the command (pid {}) with SIG{}", what_, *pid_, signal);
        return;
      }
      if (absl::Now() >= deadline) break;
      std::this_thread::sleep_for(absl::ToChronoMicroseconds(kKillPoll));
    }
  }
  kLog.Warning("{}: the command (pid {}) goes on running after SIGKILL", what_, *pid_);
}

void GuestStreamExec::CleanUp() {
  Close(in_);
  Close(out_);
  Close(err_);
  if (!dir_made_ || !unreachable_.ok()) return;
  absl::StatusOr<std::optional<ExecResult>> removed =
      RunHelper({"/bin/sh", "-c", StrCat("rm -rf ", ShellQuote(dir_))});
  std::string failure;
  if (!removed.ok()) {
    failure = removed.status().ToString();
  } else if (!*removed) {
    failure = "the guest agent could not start /bin/sh";
  } else if ((*removed)->exit_code != 0) {
    failure = StrCat("exit code ", (*removed)->exit_code, ": ",
                     (*removed)->stderr_data.substr(0, kMaxQuotedReply));
  }
  if (!failure.empty()) {
    kLog.Warning("{}: removing {} from the guest: {}", what_, dir_, failure);
    return;
  }
  dir_made_ = false;
}

absl::StatusOr<int> GuestStreamExec::Buffered(std::string_view why) {
  kLog.Info("{}: buffered exec ({}): stdin is passed at its end, output once the command ended",
            what_, why);
  std::string input;
  if (streams_.read_stdin) {
    while (true) {
      absl::StatusOr<std::string> chunk = streams_.read_stdin();
      if (!chunk.ok() || chunk->empty()) break;  // An error ends the input as its end does.
      if (input.size() + chunk->size() > kMaxBufferedStdinBytes) {
        return absl::InvalidArgumentError(
            StrCat(what_, ": stdin: more than ", kMaxBufferedStdinBytes,
                   " bytes: this guest gets its stdin in one piece (buffered exec, because ", why,
                   "), which holds at most that"));
      }
      input += *chunk;
    }
  }
  Json command = Json::parse(GuestExecCommand(argv_));
  if (streams_.read_stdin) command["arguments"]["input-data"] = absl::Base64Escape(input);
  absl::StatusOr<std::string> started = Send(command);
  if (absl::IsInternal(started.status())) {
    return absl::FailedPreconditionError(StrCat(
        what_, ": the guest agent could not start the command: ", started.status().message()));
  }
  if (!started.ok()) return Annotate(started.status(), what_);
  Json parsed = Json::parse(*started, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object() || !parsed.contains("return") || !parsed["return"].is_object() ||
      !parsed["return"].contains("pid") || !parsed["return"]["pid"].is_number_integer()) {
    return absl::InternalError(StrCat(what_, ": the guest agent's reply to guest-exec has no pid: ",
                                      started->substr(0, kMaxQuotedReply)));
  }
  const int64_t pid = parsed["return"]["pid"].get<int64_t>();
  absl::Duration poll = options_.fast_poll;
  while (true) {
    if (streams_.client_gone && streams_.client_gone()) {
      return absl::CancelledError(StrCat(what_, ": the client has gone"));
    }
    absl::StatusOr<std::string> reply =
        Send(Json{{"execute", "guest-exec-status"}, {"arguments", {{"pid", pid}}}});
    if (!reply.ok()) return Annotate(reply.status(), what_);
    absl::StatusOr<std::optional<ExecResult>> result = ParseGuestExecStatus(*reply);
    if (!result.ok()) return Annotate(result.status(), what_);
    if (*result) {
      const ExecResult& done = **result;
      if (done.output_truncated) {
        kLog.Warning("{}: the output was cut at {} bytes (buffered exec)", what_,
                     kMaxExecOutputBytes);
      }
      if (!done.stdout_data.empty() && streams_.write_stdout) {
        VMLET_RETURN_IF_ERROR(
            Annotate(streams_.write_stdout(done.stdout_data), StrCat(what_, ": relaying stdout")));
      }
      if (!done.stderr_data.empty() && streams_.write_stderr) {
        VMLET_RETURN_IF_ERROR(
            Annotate(streams_.write_stderr(done.stderr_data), StrCat(what_, ": relaying stderr")));
      }
      return done.exit_code;
    }
    std::this_thread::sleep_for(absl::ToChronoMicroseconds(poll));
    poll = std::min(poll * 2, options_.idle_poll);
  }
}

}  // namespace

absl::StatusOr<int> StreamInGuest(const AgentCommand& agent, std::string_view vm_name,
                                  const std::vector<std::string>& argv, const ExecStreams& streams,
                                  const StreamExecOptions& options) {
  GuestStreamExec exec(agent, vm_name, argv, streams, options);
  return exec.Run();
}

}  // namespace vmlet::vmdriver::libvirt
