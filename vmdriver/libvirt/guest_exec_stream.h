// Streaming exec through the QEMU guest agent (qemu-ga), for the
// interactive exec of kubectl and crictl. qemu-ga hands out a command's
// captured output only once it has exited, so the streams go through files
// in the guest that the agent reads and writes while the command runs:
//
//   1. guest-exec, waited for: /bin/sh -c 'mkdir -m 700 D; : >D/out;
//      : >D/err; mkfifo -m 600 D/in' for a new private directory
//      D = /tmp/.vmlet-exec-<16 random hex> (the FIFO only when there is a
//      stdin).
//   2. guest-file-open D/in "r+" (O_RDWR opens a FIFO at once, without a
//      reader, and makes the agent's handle the FIFO's only writer), D/out
//      and D/err "r".
//   3. guest-exec, not waited for: /bin/sh -c 'exec "$@" <D/in >D/out
//      2>D/err' sh argv... (</dev/null without a stdin). Through `exec` the
//      pid guest-exec returns is the command's.
//   4. Until guest-exec-status says the command has exited: guest-file-read
//      of out and err (a read at the end of a file returns nothing, a later
//      one what was appended since) relayed to write_stdout/write_stderr;
//      stdin, read by a thread of our own, written to the FIFO with
//      guest-file-write + guest-file-flush; at the end of stdin the FIFO's
//      handle is closed and the command reads end of file. The loop polls
//      every 20 ms while data flows and backs off to 200 ms when idle
//      (stdin arriving wakes it at once).
//   5. After the exit: out and err are read to their ends, the handles
//      closed, D removed (guest-exec of rm -rf, waited for), and the exit
//      code returned (128 + signal for a command ended by a signal).
//
// What qemu-ga 7.2 (Debian 12) does, as observed, and why the writes are
// shaped as they are: the agent opens every file O_NONBLOCK and works on it
// through stdio. guest-file-write only fills the stdio buffer (4 KiB for a
// FIFO); the bytes reach the FIFO at guest-file-flush. When the pipe is
// full the flush fails with EAGAIN, stdio drops the buffer, and the stream's
// error flag stays set, so that the next guest-file-write reports an error
// although it buffered its bytes. So each write carries at most PIPE_BUF
// (4096) bytes, which the kernel writes to a pipe whole or not at all; a
// failed flush means "nothing written, try again later", and is followed
// at once by a write of 0 bytes that clears the stale error flag (so that a
// write that fails means a real error).
//
// When the client goes away (a write_* fails) or an agent command fails,
// the command is ended (kill -TERM, then -KILL after a grace time, each
// followed by guest-exec-status until it has exited, so that the agent
// forgets it), the handles are closed and D is removed. When the agent
// stops answering or the VM stops, nothing more is sent to it and D stays
// in the guest's /tmp.
//
// A program that does not exist: sh prints "exec: ...: not found" to
// stderr and the exit code is 127, as with a shell (and kubectl exec in a
// container); likewise 126 for one that cannot be executed.
//
// Fallback: a guest without /bin/sh (the agent cannot start it), or whose
// step 1 fails (no mkdir or mkfifo, /tmp not writable), or whose agent
// refuses the file commands (guest-file-* blocked in qemu-ga's
// configuration), gets the buffered guest-exec: stdin is collected to its
// end (at most kMaxBufferedStdinBytes) and passed as input-data, and the
// output is relayed once the command has exited. A client that keeps stdin
// open then waits until it closes it.
//
// Limits: the output the command writes stays in the guest's /tmp until
// the exec ends (tmpfs: the guest's memory); each read carries at most
// kStreamReadBytes (libvirt refuses messages of 4 MiB and more, "Unable to
// encode message payload"; a 1 MiB read is a 1.4 MB reply). stdin goes
// 4 KiB per write and flush, two agent round trips: about 150 KB/s under
// TCG, plenty for typing, slow for bulk copies.
#ifndef VMLET_VMDRIVER_LIBVIRT_GUEST_EXEC_STREAM_H_
#define VMLET_VMDRIVER_LIBVIRT_GUEST_EXEC_STREAM_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "vmdriver/libvirt/guest_exec.h"
#include "vmdriver/vm_driver.h"

namespace vmlet::vmdriver::libvirt {

// The most one guest-file-read asks for.
inline constexpr size_t kStreamReadBytes = size_t{1} << 20;
// The most one guest-file-write carries: PIPE_BUF, written to a pipe whole
// or not at all.
inline constexpr size_t kStreamWriteBytes = 4096;
// How much stdin the relay holds that the command has not taken yet; the
// stdin thread stops reading beyond it (one read_stdin result more at most).
inline constexpr size_t kMaxPendingStdinBytes = size_t{64} << 10;
// The most stdin the buffered fallback passes, as base64 in one agent
// command. qemu-ga 7.2 under QEMU 7.2 (TCG) was seen to answer commands of
// up to 208 KiB and none from 216 KiB on (libvirt then times out, and the
// agent's channel stays unreliable for a while): 128 KiB is 171 KiB of
// base64.
inline constexpr size_t kMaxBufferedStdinBytes = size_t{128} << 10;

// Timing, changed by tests only.
struct StreamExecOptions {
  absl::Duration fast_poll = absl::Milliseconds(20);   // While data flows.
  absl::Duration idle_poll = absl::Milliseconds(200);  // The most when idle.
  // How long a command has to end after SIGTERM (and then after SIGKILL).
  absl::Duration kill_grace = absl::Seconds(2);
  // How long each agent command may take.
  absl::Duration agent_timeout = absl::Seconds(5);
};

// Runs argv[0] with argv[1..] in the guest of VM `vm_name` through `agent`,
// relaying `streams` as described above, and returns the exit code.
// INVALID_ARGUMENT for an empty argv, or stdin longer than
// kMaxBufferedStdinBytes in the fallback; FAILED_PRECONDITION when the
// agent is not connected, the VM stops, or the agent cannot start the
// command in the fallback; the error of a write_* function that failed;
// INTERNAL for a reply of the agent that makes no sense.
//
// Threads: blocks the calling thread, which makes every agent call and
// every write_* call. read_stdin is called on a thread of its own, one call
// at a time; once the command has ended (or the exec failed), cancel_stdin
// is called and that thread joined, before this returns. (Without a cancel_stdin the thread is left
// to end after the read_stdin call in progress, holding copies of both functions.)
absl::StatusOr<int> StreamInGuest(const AgentCommand& agent, std::string_view vm_name,
                                  const std::vector<std::string>& argv, const ExecStreams& streams,
                                  const StreamExecOptions& options = {});

}  // namespace vmlet::vmdriver::libvirt

#endif  // VMLET_VMDRIVER_LIBVIRT_GUEST_EXEC_STREAM_H_
