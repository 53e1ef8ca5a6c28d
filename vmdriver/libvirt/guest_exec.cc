#include "vmdriver/libvirt/guest_exec.h"

#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "base/status.h"
#include "base/str_util.h"
#include "vmdriver/libvirt/libvirt_errors.h"

namespace vmlet::vmdriver::libvirt {
namespace {

using Json = nlohmann::json;

// How long one agent command may take when the exec has time to spare. The
// first one also tells whether an agent answers at all: a guest that does
// not run one fails after this long, not after the exec's timeout.
constexpr absl::Duration kAgentCommandTimeout = absl::Seconds(5);
constexpr absl::Duration kFirstPoll = absl::Milliseconds(10);
constexpr absl::Duration kMaxPoll = absl::Milliseconds(100);
// The command as quoted in messages is cut after this many bytes.
constexpr size_t kMaxQuotedCommand = 200;

// argv joined by spaces, for messages.
std::string Quoted(const std::vector<std::string>& argv) {
  std::string text;
  for (size_t i = 0; i < argv.size(); ++i) StrAppend(&text, i == 0 ? "" : " ", argv[i]);
  if (text.size() > kMaxQuotedCommand) text = StrCat(text.substr(0, kMaxQuotedCommand), "...");
  return StrCat("\"", text, "\"");
}

// The reply's "return" object; INTERNAL when the reply is not one.
absl::StatusOr<Json> ReturnOf(std::string_view reply, std::string_view command) {
  Json parsed = Json::parse(reply, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object() || !parsed.contains("return") || !parsed["return"].is_object()) {
    return absl::InternalError(
        StrCat("the guest agent's reply to ", command,
               " is not a {\"return\": {...}} object: ", reply.substr(0, 200)));
  }
  return parsed["return"];
}

// Decodes one base64 stream of a guest-exec-status reply into `out`, cut at
// kMaxExecOutputBytes; true when it was cut.
absl::StatusOr<bool> DecodeStream(const Json& status, const char* field, std::string* out) {
  if (!status.contains(field)) return false;
  if (!status[field].is_string()) {
    return absl::InternalError(StrCat("guest-exec-status: \"", field, "\" is not a string"));
  }
  const std::string& encoded = status[field].get_ref<const std::string&>();
  if (!absl::Base64Unescape(encoded, out)) {
    return absl::InternalError(StrCat("guest-exec-status: \"", field, "\" is not base64"));
  }
  if (out->size() <= kMaxExecOutputBytes) return false;
  out->resize(kMaxExecOutputBytes);
  return true;
}

// How long the next agent command may take, given the exec's deadline:
// kAgentCommandTimeout, less when the deadline is nearer.
absl::Duration AgentTimeout(absl::Time deadline) {
  return std::min(kAgentCommandTimeout, deadline - absl::Now());
}

}  // namespace

std::string GuestExecCommand(const std::vector<std::string>& argv) {
  Json arguments = {{"path", argv.empty() ? std::string() : argv[0]}, {"capture-output", true}};
  if (argv.size() > 1) arguments["arg"] = std::vector<std::string>(argv.begin() + 1, argv.end());
  return Json{{"execute", "guest-exec"}, {"arguments", std::move(arguments)}}.dump();
}

absl::StatusOr<std::optional<ExecResult>> ParseGuestExecStatus(std::string_view reply) {
  VMLET_ASSIGN_OR_RETURN(Json status, ReturnOf(reply, "guest-exec-status"));
  if (!status.value("exited", false)) return std::nullopt;
  ExecResult result;
  if (status.contains("exitcode") && status["exitcode"].is_number_integer()) {
    result.exit_code = status["exitcode"].get<int>();
  } else if (status.contains("signal") && status["signal"].is_number_integer()) {
    result.exit_code = 128 + status["signal"].get<int>();  // As a shell reports it.
  } else {
    return absl::InternalError(
        StrCat("guest-exec-status: an exited process without \"exitcode\" or \"signal\": ",
               reply.substr(0, 200)));
  }
  VMLET_ASSIGN_OR_RETURN(bool stdout_cut, DecodeStream(status, "out-data", &result.stdout_data));
  VMLET_ASSIGN_OR_RETURN(bool stderr_cut, DecodeStream(status, "err-data", &result.stderr_data));
  result.output_truncated = stdout_cut || stderr_cut || status.value("out-truncated", false) ||
                            status.value("err-truncated", false);
  return result;
}

absl::StatusOr<ExecResult> RunInGuest(const AgentCommand& agent, std::string_view vm_name,
                                      const std::vector<std::string>& argv,
                                      absl::Duration timeout) {
  if (argv.empty()) {
    return absl::InvalidArgumentError("argv: empty: expected the command to run in the guest");
  }
  const absl::Time deadline =
      timeout == absl::ZeroDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  const std::string what = StrCat("running ", Quoted(argv), " in VM \"", vm_name, "\"");

  absl::StatusOr<std::string> started = agent(GuestExecCommand(argv), AgentTimeout(deadline));
  if (absl::IsInternal(started.status())) {
    // The agent answered with an error: it could not start the command
    // (no such file, not executable, guest-exec disabled in qemu-ga).
    return absl::FailedPreconditionError(StrCat(
        what, ": the guest agent could not start the command: ", started.status().message()));
  }
  // Not connected, not running: the message names the VM and the cause.
  if (absl::IsFailedPrecondition(started.status())) return started.status();
  VMLET_RETURN_IF_ERROR(Annotate(started.status(), what));
  absl::StatusOr<Json> exec = ReturnOf(*started, "guest-exec");
  if (!exec.ok()) return Annotate(exec.status(), what);
  if (!exec->contains("pid") || !(*exec)["pid"].is_number_integer()) {
    return absl::InternalError(StrCat(
        what, ": the guest agent's reply to guest-exec has no pid: ", started->substr(0, 200)));
  }
  const Json status_command = {{"execute", "guest-exec-status"},
                               {"arguments", {{"pid", (*exec)["pid"].get<int64_t>()}}}};
  const std::string status_text = status_command.dump();

  absl::Duration poll = kFirstPoll;
  while (true) {
    absl::StatusOr<std::string> reply = agent(status_text, AgentTimeout(deadline));
    if (!reply.ok()) return Annotate(reply.status(), what);
    absl::StatusOr<std::optional<ExecResult>> result = ParseGuestExecStatus(*reply);
    if (!result.ok()) return Annotate(result.status(), what);
    if (*result) return **std::move(result);
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      // The agent cannot stop the process: it goes on in the guest.
      return absl::DeadlineExceededError(
          StrCat("command ", Quoted(argv), " in VM \"", vm_name, "\" did not finish within ",
                 absl::FormatDuration(timeout),
                 "; it goes on running in the guest (the guest agent cannot stop it)"));
    }
    std::this_thread::sleep_for(absl::ToChronoMicroseconds(std::min(poll, left)));
    poll = std::min(poll * 2, kMaxPoll);
  }
}

AgentCommand LibvirtAgent(virDomainPtr domain, std::string vm_name) {
  return [domain, vm_name = std::move(vm_name)](
             const std::string& command, absl::Duration timeout) -> absl::StatusOr<std::string> {
    // libvirt counts in whole seconds; at least one.
    const int seconds = static_cast<int>(
        std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(timeout, absl::Seconds(1)))));
    char* reply = virDomainQemuAgentCommand(domain, command.c_str(), seconds, 0);
    if (reply != nullptr) {
      std::string text(reply);
      std::free(reply);
      return text;
    }
    virErrorPtr error = virGetLastError();
    const int code = error != nullptr ? error->code : VIR_ERR_INTERNAL_ERROR;
    const char* message = error != nullptr && error->message != nullptr ? error->message : "";
    if (code == VIR_ERR_AGENT_UNRESPONSIVE || code == VIR_ERR_AGENT_UNSYNCED) {
      return absl::FailedPreconditionError(
          StrCat("guest agent not connected in VM \"", vm_name,
                 "\": the guest must run qemu-guest-agent (libvirt: ", message, ")"));
    }
    if (code == VIR_ERR_OPERATION_INVALID) {  // It stopped since Exec looked.
      return absl::FailedPreconditionError(
          StrCat("VM \"", vm_name, "\" is not running (libvirt: ", message, ")"));
    }
    if (code == VIR_ERR_ARGUMENT_UNSUPPORTED) {
      // "QEMU guest agent is not configured": a domain defined without the
      // channel, by a vmlet older than the channel.
      return absl::FailedPreconditionError(
          StrCat("VM \"", vm_name, "\" has no guest agent channel (libvirt: ", message,
                 "): a VM created by this version of vmlet has one"));
    }
    return absl::Status(CodeForLibvirtError(code), StrCat("libvirt: ", message));
  };
}

}  // namespace vmlet::vmdriver::libvirt
