#include "streaming/spdy_session.h"

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "base/logging.h"
#include "base/status.h"
#include "base/str_util.h"
#include "streaming/spdy_frame.h"

namespace vmlet::streaming {
namespace {

constexpr Logger kLog("spdy");

// Bytes asked of the transport per read.
constexpr size_t kReadChunkSize = 64 << 10;
// A WINDOW_UPDATE goes out once this much has been consumed unannounced.
constexpr uint64_t kWindowUpdateThreshold = kSpdyInitialWindowSize / 2;

// Waits on `cv` until notified (or spuriously woken) or `deadline`; false
// once the deadline has passed. Callers re-check their condition.
bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
               absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) {
    cv.wait(lock);
    return true;
  }
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return false;
  // Bounded so that a far deadline cannot overflow the clock arithmetic.
  cv.wait_for(lock, absl::ToChronoNanoseconds(std::min(left, absl::Hours(1))));
  return true;
}

}  // namespace

namespace spdy_internal {

// One stream's state. Fields below `headers` are guarded by SessionCore::mu.
struct StreamState {
  StreamState(uint32_t stream_id, Headers stream_headers, int64_t window)
      : id(stream_id),
        headers(std::move(stream_headers)),
        header_bytes(HeaderBytes(headers)),
        send_window(window) {}

  // What `headers` costs in memory, roughly.
  static size_t HeaderBytes(const Headers& headers) {
    size_t bytes = 0;
    for (const auto& [name, value] : headers) bytes += name.size() + value.size() + 64;
    return bytes;
  }

  const uint32_t id;
  const Headers headers;
  const size_t header_bytes;

  bool replied = false;     // the stream is open both ways (SYN_REPLY seen or sent)
  bool remote_fin = false;  // the peer has half-closed
  bool local_fin = false;   // we have half-closed
  bool reset = false;       // by either side: Read/Write return reset_status
  absl::Status reset_status;
  bool abandoned = false;  // the application dropped its handle
  bool in_map = true;      // counted among the session's open streams
  bool window_update_due = false;
  std::deque<std::string> chunks;  // received, not yet read
  size_t buffered = 0;             // bytes in chunks
  int64_t send_window;             // may go negative before flow control is on
  uint64_t unacked = 0;            // read but not yet announced by WINDOW_UPDATE
  std::condition_variable cv;      // Read, Write (window), OpenStream (reply)
};

// What a session's threads and its streams share. Lock order: write_mu
// before mu; mu is never held while blocking on the transport.
struct SessionCore {
  SessionCore(std::unique_ptr<Transport> connection, SpdySession::Role role)
      : is_server(role == SpdySession::Role::kServer),
        transport(std::move(connection)),
        encoder(std::make_unique<SpdyFrameEncoder>()),
        next_stream_id(is_server ? 2 : 1),
        next_ping_id(is_server ? 2 : 1) {}

  // The reader thread: frames in until the connection ends.
  void ReaderLoop();
  // The writer thread: queued control frames out until the session ends.
  void WriterLoop();

  absl::StatusOr<std::shared_ptr<Stream>> Accept(const std::shared_ptr<SessionCore>& self,
                                                 absl::Time deadline);
  absl::StatusOr<std::shared_ptr<Stream>> Open(const std::shared_ptr<SessionCore>& self,
                                               const Headers& headers, absl::Time deadline);
  absl::Status Ping(absl::Time deadline);
  void Close();
  absl::Status Wait();

  // Stream operations (SpdyStream forwards here).
  absl::StatusOr<std::string> Read(StreamState& s);
  absl::Status Write(StreamState& s, std::string_view data);
  absl::Status CloseWrite(StreamState& s);
  void Reset(StreamState& s, bool abandon);

  // Writes the queued control frames, then `frames`, as one transport
  // write. Caller holds write_mu. An error in `frames`' encoding is
  // returned after the control frames went out; a write error ends the
  // session.
  absl::Status WriteLocked(std::vector<SpdyFrame> frames);

  // Frame handlers, reader thread, `lock` held on mu. An error is a
  // protocol error that ends the session.
  absl::Status Handle(std::unique_lock<std::mutex>& lock, SpdyFrame frame);
  absl::Status HandleSynStream(SpdySynStream& f);
  void HandleData(std::unique_lock<std::mutex>& lock, SpdyData& f);
  void HandleRst(const SpdyRstStream& f);
  void HandleSettings(const SpdySettings& f);
  void HandleWindowUpdate(const SpdyWindowUpdate& f);
  // Ends the session for a malformed frame stream: GOAWAY(PROTOCOL_ERROR)
  // if the write lock is free, then shutdown.
  void ProtocolError(const absl::Status& status);

  // With mu held.
  void QueueControlLocked(SpdyFrame frame);
  bool HasControlWorkLocked() const;
  void TakeControlWorkLocked(std::vector<SpdyFrame>* out);
  // Announces `n` consumed (or dropped) bytes to a peer that does flow
  // control: for stream `s` if it still receives, and for the session.
  void CreditLocked(StreamState* s, size_t n);
  void DropBufferedLocked(StreamState& s);
  void MaybeRetireLocked(StreamState& s);
  void NotifyAllStreamsLocked();
  // Marks the session ended with `why` (once) and wakes every waiter;
  // shuts the transport down unless `shutdown` is false.
  void EndLocked(absl::Status why, bool shutdown = true);
  void ShutdownTransportLocked();
  // The error for an operation on a closed session.
  absl::Status ClosedErrorLocked(std::string_view what) const;
  bool PeerStreamId(uint32_t id) const { return (id % 2 == 1) == is_server; }

  const bool is_server;

  std::mutex write_mu;
  // Guarded by write_mu for writes and by mu for Shutdown(); reset (with
  // both held) once the threads are joined. Read only by the reader thread.
  std::unique_ptr<Transport> transport;
  std::unique_ptr<SpdyFrameEncoder> encoder;  // guarded by write_mu

  std::mutex mu;
  std::map<uint32_t, std::shared_ptr<StreamState>> streams;  // open streams
  std::deque<std::shared_ptr<StreamState>> accept_queue;
  std::deque<SpdyFrame> control_queue;   // for the writer thread
  std::vector<uint32_t> window_updates;  // streams with window_update_due
  bool session_window_update_due = false;
  uint64_t session_unacked = 0;
  uint32_t next_stream_id;
  uint32_t last_peer_stream_id = 0;
  uint32_t next_ping_id;
  std::map<uint32_t, bool> pings;  // our pings in flight: answered?
  size_t session_buffered = 0;
  size_t session_header_bytes = 0;  // headers of the streams in `streams`
  int64_t session_send_window = kSpdyInitialWindowSize;
  int64_t peer_initial_window = kSpdyInitialWindowSize;
  bool stream_flow_control = false;   // the peer sends stream WINDOW_UPDATEs
  bool session_flow_control = false;  // the peer sends session WINDOW_UPDATEs
  size_t peer_max_streams = kSpdyMaxConcurrentStreams;
  bool closing = false;  // Close() was called: streams fail
  bool ended = false;
  bool transport_shut = false;
  absl::Status end_status;
  std::condition_variable accept_cv;  // AcceptStream
  std::condition_variable space_cv;   // reader: room for data or control frames
  std::condition_variable writer_cv;  // writer thread: work or end
  std::condition_variable end_cv;     // Wait, Close, Ping
};

namespace {

// The application's handle on a stream. Dropping it abandons the stream.
class SpdyStream final : public Stream {
 public:
  SpdyStream(std::shared_ptr<SessionCore> core, std::shared_ptr<StreamState> state)
      : core_(std::move(core)), state_(std::move(state)) {}
  ~SpdyStream() override { core_->Reset(*state_, /*abandon=*/true); }

  absl::StatusOr<std::string> Read() override { return core_->Read(*state_); }
  absl::Status Write(std::string_view data) override {
    std::lock_guard lock(write_call_mu_);
    return core_->Write(*state_, data);
  }
  absl::Status CloseWrite() override {
    std::lock_guard lock(write_call_mu_);
    return core_->CloseWrite(*state_);
  }
  void Reset() override { core_->Reset(*state_, /*abandon=*/false); }
  const Headers& headers() const override { return state_->headers; }

 private:
  const std::shared_ptr<SessionCore> core_;
  const std::shared_ptr<StreamState> state_;
  std::mutex write_call_mu_;  // keeps each Write's frames together
};

}  // namespace

void SessionCore::QueueControlLocked(SpdyFrame frame) {
  control_queue.push_back(std::move(frame));
  writer_cv.notify_one();
}

bool SessionCore::HasControlWorkLocked() const {
  return !control_queue.empty() || !window_updates.empty() || session_window_update_due;
}

void SessionCore::TakeControlWorkLocked(std::vector<SpdyFrame>* out) {
  for (SpdyFrame& frame : control_queue) out->push_back(std::move(frame));
  control_queue.clear();
  for (uint32_t id : window_updates) {
    auto it = streams.find(id);
    if (it == streams.end()) continue;
    StreamState& s = *it->second;
    s.window_update_due = false;
    if (s.unacked == 0 || s.remote_fin || s.reset) continue;
    uint32_t delta = static_cast<uint32_t>(std::min<uint64_t>(s.unacked, kSpdyMaxWindow));
    out->push_back(SpdyWindowUpdate{.stream_id = id, .delta = delta});
    s.unacked -= delta;
  }
  window_updates.clear();
  if (session_window_update_due && session_unacked > 0) {
    uint32_t delta = static_cast<uint32_t>(std::min<uint64_t>(session_unacked, kSpdyMaxWindow));
    out->push_back(SpdyWindowUpdate{.stream_id = 0, .delta = delta});
    session_unacked -= delta;
  }
  session_window_update_due = false;
  space_cv.notify_all();  // the reader may wait for room in control_queue
}

void SessionCore::CreditLocked(StreamState* s, size_t n) {
  if (n == 0) return;
  if (s != nullptr && s->in_map && !s->remote_fin && !s->reset) {
    s->unacked += n;
    if (s->unacked >= kWindowUpdateThreshold && !s->window_update_due) {
      s->window_update_due = true;
      window_updates.push_back(s->id);
      writer_cv.notify_one();
    }
  }
  session_unacked += n;
  if (session_unacked >= kWindowUpdateThreshold && !session_window_update_due) {
    session_window_update_due = true;
    writer_cv.notify_one();
  }
}

void SessionCore::DropBufferedLocked(StreamState& s) {
  // Dropped bytes still count against the peer's session window.
  CreditLocked(nullptr, s.buffered);
  session_buffered -= s.buffered;
  s.buffered = 0;
  s.chunks.clear();
  space_cv.notify_all();
}

void SessionCore::MaybeRetireLocked(StreamState& s) {
  if (!s.in_map) return;
  if (s.reset || (s.remote_fin && (s.local_fin || s.abandoned))) {
    s.in_map = false;
    session_header_bytes -= s.header_bytes;
    streams.erase(s.id);
  }
}

void SessionCore::NotifyAllStreamsLocked() {
  for (auto& [id, s] : streams) s->cv.notify_all();
}

void SessionCore::ShutdownTransportLocked() {
  if (transport_shut || transport == nullptr) return;
  transport_shut = true;
  transport->Shutdown();
}

void SessionCore::EndLocked(absl::Status why, bool shutdown) {
  if (!ended) {
    ended = true;
    end_status = closing ? absl::OkStatus() : std::move(why);
    if (end_status.ok()) {
      kLog.Debug("SPDY session ended");
    } else {
      kLog.Debug("SPDY session ended: {}", end_status.message());
    }
    NotifyAllStreamsLocked();
    accept_cv.notify_all();
    space_cv.notify_all();
    writer_cv.notify_all();
    end_cv.notify_all();
  }
  if (shutdown) ShutdownTransportLocked();
}

absl::Status SessionCore::ClosedErrorLocked(std::string_view what) const {
  if (closing) return absl::UnavailableError(StrCat(what, ": connection closed by Close()"));
  if (end_status.ok()) {
    return absl::UnavailableError(StrCat(what, ": connection closed by the peer"));
  }
  return absl::UnavailableError(StrCat(what, ": connection closed: ", end_status.message()));
}

absl::Status SessionCore::WriteLocked(std::vector<SpdyFrame> frames) {
  std::vector<SpdyFrame> control;
  {
    std::lock_guard lock(mu);
    if (ended || transport == nullptr) return ClosedErrorLocked("writing");
    TakeControlWorkLocked(&control);
  }
  std::string bytes;
  for (const SpdyFrame& frame : control) {
    absl::Status status = encoder->Encode(frame, &bytes);
    if (!status.ok()) {
      // Our own frames always encode unless zlib itself failed, which leaves
      // the header compression context unusable.
      kLog.Error("encoding a SPDY {} frame: {}", SpdyFrameName(frame), status.message());
      std::lock_guard lock(mu);
      EndLocked(Annotate(status, "encoding a SPDY frame"));
      return status;
    }
  }
  absl::Status frames_status;
  for (const SpdyFrame& frame : frames) {
    frames_status = encoder->Encode(frame, &bytes);
    if (!frames_status.ok()) break;
  }
  if (!bytes.empty()) {
    absl::Status status = transport->Write(bytes);
    if (!status.ok()) {
      std::lock_guard lock(mu);
      EndLocked(Annotate(status, "writing SPDY frames"));
      return ClosedErrorLocked("writing");
    }
  }
  return frames_status;
}

void SessionCore::WriterLoop() {
  std::unique_lock lock(mu);
  while (true) {
    writer_cv.wait(lock, [&] { return ended || HasControlWorkLocked(); });
    if (ended) return;
    lock.unlock();
    {
      std::lock_guard write_lock(write_mu);
      (void)WriteLocked({});
    }
    lock.lock();
  }
}

void SessionCore::ReaderLoop() {
  SpdyFrameDecoder decoder;
  std::string buffer(kReadChunkSize, '\0');
  while (true) {
    while (true) {
      absl::StatusOr<std::optional<SpdyFrame>> next = decoder.Next();
      if (!next.ok()) {
        ProtocolError(next.status());
        return;
      }
      if (!next->has_value()) break;
      std::unique_lock lock(mu);
      // Frames that need an answer wait for room in the writer's queue.
      space_cv.wait(lock,
                    [&] { return ended || control_queue.size() < kSpdyMaxQueuedControlFrames; });
      if (ended) return;
      absl::Status status = Handle(lock, **std::move(next));
      if (!status.ok()) {
        lock.unlock();
        ProtocolError(status);
        return;
      }
      if (ended) return;
    }
    // Only this thread reads, and the transport is released only after it
    // has been joined.
    absl::StatusOr<size_t> n = transport->Read(buffer.data(), buffer.size());
    if (!n.ok() || *n == 0) {
      std::lock_guard lock(mu);
      if (!n.ok()) {
        EndLocked(Annotate(n.status(), "reading SPDY frames"));
      } else if (decoder.buffered_bytes() > 0) {
        EndLocked(absl::UnavailableError(
            StrCat("connection closed by the peer in the middle of a frame (",
                   decoder.buffered_bytes(), " bytes of it received)")));
      } else {
        EndLocked(absl::OkStatus());
      }
      return;
    }
    decoder.Append(std::string_view(buffer.data(), *n));
  }
}

void SessionCore::ProtocolError(const absl::Status& status) {
  kLog.Warning("ending SPDY session: {}", status.message());
  uint32_t last_good;
  {
    std::lock_guard lock(mu);
    // Waiters learn of the end now; the GOAWAY below may block on a peer
    // that does not read, until Close() shuts the transport down.
    EndLocked(Annotate(status, "SPDY protocol error"), /*shutdown=*/false);
    last_good = last_peer_stream_id;
  }
  {
    std::unique_lock write_lock(write_mu, std::try_to_lock);
    if (write_lock.owns_lock() && transport != nullptr && encoder != nullptr) {
      std::string bytes;
      if (encoder
              ->Encode(SpdyGoAway{.last_good_stream_id = last_good,
                                  .status = SpdyGoAwayStatus::kProtocolError},
                       &bytes)
              .ok()) {
        (void)transport->Write(bytes);
      }
    }
  }
  std::lock_guard lock(mu);
  ShutdownTransportLocked();
}

absl::Status SessionCore::Handle(std::unique_lock<std::mutex>& lock, SpdyFrame frame) {
  if (auto* f = std::get_if<SpdyData>(&frame)) {
    HandleData(lock, *f);
  } else if (auto* f = std::get_if<SpdySynStream>(&frame)) {
    return HandleSynStream(*f);
  } else if (auto* f = std::get_if<SpdySynReply>(&frame)) {
    auto it = streams.find(f->stream_id);
    if (it == streams.end() || it->second->replied) return absl::OkStatus();
    StreamState& s = *it->second;
    s.replied = true;
    if (f->flags & kSpdyFlagFin) s.remote_fin = true;
    s.cv.notify_all();
    MaybeRetireLocked(s);
  } else if (auto* f = std::get_if<SpdyHeaders>(&frame)) {
    // Extra headers carry nothing this runtime uses; only their FIN counts.
    auto it = streams.find(f->stream_id);
    if (it != streams.end() && (f->flags & kSpdyFlagFin)) {
      StreamState& s = *it->second;
      s.remote_fin = true;
      s.cv.notify_all();
      MaybeRetireLocked(s);
    }
  } else if (auto* f = std::get_if<SpdyRstStream>(&frame)) {
    HandleRst(*f);
  } else if (auto* f = std::get_if<SpdySettings>(&frame)) {
    HandleSettings(*f);
  } else if (auto* f = std::get_if<SpdyPing>(&frame)) {
    if (f->id != 0 && (f->id % 2 == 1) == is_server) {
      QueueControlLocked(*f);  // the peer's ping: echo it
    } else if (auto it = pings.find(f->id); it != pings.end()) {
      it->second = true;
      end_cv.notify_all();
    }
  } else if (auto* f = std::get_if<SpdyGoAway>(&frame)) {
    if (f->status == SpdyGoAwayStatus::kOk) {
      EndLocked(absl::OkStatus());
    } else {
      EndLocked(absl::UnavailableError(
          StrCat("the peer sent GOAWAY with status ", SpdyGoAwayStatusName(f->status))));
    }
  } else if (auto* f = std::get_if<SpdyWindowUpdate>(&frame)) {
    HandleWindowUpdate(*f);
  }
  // SpdyUnknownControl: ignored, as the spec says.
  return absl::OkStatus();
}

absl::Status SessionCore::HandleSynStream(SpdySynStream& f) {
  if (!PeerStreamId(f.stream_id) || f.stream_id <= last_peer_stream_id) {
    return absl::InvalidArgumentError(StrCat("SYN_STREAM with stream id ", f.stream_id,
                                             ", expected a new ", is_server ? "odd" : "even",
                                             " id above ", last_peer_stream_id));
  }
  last_peer_stream_id = f.stream_id;
  if (closing || streams.size() >= kSpdyMaxConcurrentStreams ||
      session_header_bytes + StreamState::HeaderBytes(f.headers) > kSpdyMaxSessionHeaderBytes) {
    QueueControlLocked(
        SpdyRstStream{.stream_id = f.stream_id, .status = SpdyRstStatus::kRefusedStream});
    return absl::OkStatus();
  }
  auto s = std::make_shared<StreamState>(f.stream_id, std::move(f.headers), peer_initial_window);
  s->replied = true;
  s->remote_fin = (f.flags & kSpdyFlagFin) != 0;
  s->local_fin = (f.flags & kSpdyFlagUnidirectional) != 0;
  streams[s->id] = s;
  session_header_bytes += s->header_bytes;
  // Queued ahead of anything the application writes on the stream: every
  // write flushes the queue first.
  if (!s->local_fin) QueueControlLocked(SpdySynReply{.stream_id = s->id});
  accept_queue.push_back(s);
  accept_cv.notify_one();
  MaybeRetireLocked(*s);
  return absl::OkStatus();
}

void SessionCore::HandleData(std::unique_lock<std::mutex>& lock, SpdyData& f) {
  auto it = streams.find(f.stream_id);
  // Data for a stream that is closed, reset or unknown is dropped.
  if (it == streams.end()) {
    CreditLocked(nullptr, f.data.size());
    return;
  }
  std::shared_ptr<StreamState> s = it->second;
  if (s->remote_fin) {
    CreditLocked(nullptr, f.data.size());
    s->reset = true;
    s->reset_status = absl::AbortedError(
        StrCat("stream ", s->id, ": the peer sent data after closing the stream"));
    DropBufferedLocked(*s);
    QueueControlLocked(
        SpdyRstStream{.stream_id = s->id, .status = SpdyRstStatus::kStreamAlreadyClosed});
    s->cv.notify_all();
    MaybeRetireLocked(*s);
    return;
  }
  size_t n = f.data.size();
  if (n > 0) {
    // Backpressure: past the limits, stop reading the connection until the
    // application reads.
    auto fits = [&] {
      return (s->buffered == 0 || s->buffered + n <= kSpdyMaxStreamBufferedBytes) &&
             (session_buffered == 0 || session_buffered + n <= kSpdyMaxSessionBufferedBytes);
    };
    auto gone = [&] { return ended || closing || s->reset || s->abandoned; };
    space_cv.wait(lock, [&] { return gone() || fits(); });
    if (!gone()) {
      s->chunks.push_back(std::move(f.data));
      s->buffered += n;
      session_buffered += n;
      s->cv.notify_all();
    } else {
      // An abandoned stream still receives until the peer ends it.
      CreditLocked(s.get(), n);
    }
  }
  if (f.flags & kSpdyFlagFin) {
    s->remote_fin = true;
    s->cv.notify_all();
    MaybeRetireLocked(*s);
  }
}

void SessionCore::HandleRst(const SpdyRstStream& f) {
  auto it = streams.find(f.stream_id);
  if (it == streams.end()) return;
  StreamState& s = *it->second;
  s.reset = true;
  s.reset_status = f.status == SpdyRstStatus::kRefusedStream
                       ? absl::AbortedError(StrCat("stream ", s.id, " was refused by the peer"))
                       : absl::AbortedError(StrCat("stream ", s.id, " was reset by the peer (",
                                                   SpdyRstStatusName(f.status), ")"));
  DropBufferedLocked(s);
  s.cv.notify_all();
  MaybeRetireLocked(s);
}

void SessionCore::HandleSettings(const SpdySettings& f) {
  for (const SpdySetting& setting : f.settings) {
    if (setting.id == kSpdySettingsMaxConcurrentStreams) {
      peer_max_streams = std::min<size_t>(setting.value, kSpdyMaxConcurrentStreams);
    } else if (setting.id == kSpdySettingsInitialWindowSize && setting.value <= kSpdyMaxWindow) {
      int64_t delta = static_cast<int64_t>(setting.value) - peer_initial_window;
      peer_initial_window = setting.value;
      for (auto& [id, s] : streams) s->send_window += delta;
      stream_flow_control = true;
      NotifyAllStreamsLocked();
    }
  }
}

void SessionCore::HandleWindowUpdate(const SpdyWindowUpdate& f) {
  if (f.stream_id == 0) {
    session_send_window += f.delta;
    session_flow_control = true;
    NotifyAllStreamsLocked();
    return;
  }
  stream_flow_control = true;
  auto it = streams.find(f.stream_id);
  if (it == streams.end()) return;
  it->second->send_window += f.delta;
  it->second->cv.notify_all();
}

absl::StatusOr<std::shared_ptr<Stream>> SessionCore::Accept(
    const std::shared_ptr<SessionCore>& self, absl::Time deadline) {
  std::unique_lock lock(mu);
  while (true) {
    if (closing) return ClosedErrorLocked("accepting a stream");
    if (!accept_queue.empty()) {
      std::shared_ptr<StreamState> s = std::move(accept_queue.front());
      accept_queue.pop_front();
      return std::make_shared<SpdyStream>(self, std::move(s));
    }
    if (ended) return ClosedErrorLocked("accepting a stream");
    if (!WaitUntil(accept_cv, lock, deadline)) {
      return absl::DeadlineExceededError("no stream opened by the peer before the deadline");
    }
  }
}

absl::StatusOr<std::shared_ptr<Stream>> SessionCore::Open(const std::shared_ptr<SessionCore>& self,
                                                          const Headers& headers,
                                                          absl::Time deadline) {
  std::shared_ptr<StreamState> s;
  {
    // Ids are taken under the write lock so that they reach the wire in
    // increasing order, as the spec requires.
    std::lock_guard write_lock(write_mu);
    {
      std::lock_guard lock(mu);
      if (closing || ended) return ClosedErrorLocked("opening a stream");
      if (streams.size() >= peer_max_streams) {
        return absl::ResourceExhaustedError(StrCat("opening a stream: ", streams.size(),
                                                   " streams are open, the limit is ",
                                                   peer_max_streams));
      }
      if (next_stream_id > kSpdyMaxStreamId) {
        return absl::ResourceExhaustedError("opening a stream: the stream ids are used up");
      }
      s = std::make_shared<StreamState>(next_stream_id, headers, peer_initial_window);
      next_stream_id += 2;
      streams[s->id] = s;
      session_header_bytes += s->header_bytes;
    }
    absl::Status status = WriteLocked({SpdySynStream{.stream_id = s->id, .headers = headers}});
    if (!status.ok()) {
      std::lock_guard lock(mu);
      s->reset = true;
      MaybeRetireLocked(*s);
      return Annotate(status, "opening a stream");
    }
  }
  std::unique_lock lock(mu);
  while (!s->replied) {
    absl::Status failure;
    if (s->reset) {
      failure = s->reset_status;
    } else if (closing || ended) {
      failure = ClosedErrorLocked(StrCat("opening stream ", s->id));
    } else if (!WaitUntil(s->cv, lock, deadline)) {
      failure = absl::DeadlineExceededError(
          StrCat("opening stream ", s->id, ": no SYN_REPLY from the peer before the deadline"));
    } else {
      continue;
    }
    // Cancel a stream the peer may still answer.
    if (!s->reset && !ended && !closing) {
      QueueControlLocked(SpdyRstStream{.stream_id = s->id, .status = SpdyRstStatus::kCancel});
    }
    s->reset = true;
    MaybeRetireLocked(*s);
    return failure;
  }
  return std::make_shared<SpdyStream>(self, std::move(s));
}

absl::Status SessionCore::Ping(absl::Time deadline) {
  std::unique_lock lock(mu);
  if (closing || ended) return ClosedErrorLocked("sending a PING");
  uint32_t id = next_ping_id;
  next_ping_id = next_ping_id + 2 > kSpdyMaxStreamId ? (is_server ? 2 : 1) : next_ping_id + 2;
  pings[id] = false;
  QueueControlLocked(SpdyPing{.id = id});
  while (true) {
    absl::Status result;
    if (pings[id]) {
      result = absl::OkStatus();
    } else if (closing || ended) {
      result = ClosedErrorLocked("waiting for a PING answer");
    } else if (!WaitUntil(end_cv, lock, deadline)) {
      result =
          absl::DeadlineExceededError(StrCat("no answer to PING ", id, " before the deadline"));
    } else {
      continue;
    }
    pings.erase(id);
    return result;
  }
}

void SessionCore::Close() {
  std::unique_lock lock(mu);
  if (!closing && !ended) {
    closing = true;
    QueueControlLocked(SpdyGoAway{.last_good_stream_id = last_peer_stream_id});
    accept_queue.clear();
    for (auto& [id, s] : streams) DropBufferedLocked(*s);
    NotifyAllStreamsLocked();
    accept_cv.notify_all();
    space_cv.notify_all();
    end_cv.notify_all();
  }
  // The peer answers GOAWAY by closing the connection; reading until then
  // leaves nothing unread that would turn our close into a reset.
  absl::Time deadline = absl::Now() + kSpdyCloseLinger;
  while (!ended && WaitUntil(end_cv, lock, deadline)) {
  }
  EndLocked(absl::OkStatus());
}

absl::Status SessionCore::Wait() {
  std::unique_lock lock(mu);
  end_cv.wait(lock, [&] { return ended; });
  return end_status;
}

absl::StatusOr<std::string> SessionCore::Read(StreamState& s) {
  std::unique_lock lock(mu);
  while (true) {
    if (closing) return ClosedErrorLocked(StrCat("reading stream ", s.id));
    if (s.reset) return s.reset_status;
    if (!s.chunks.empty()) {
      std::string chunk = std::move(s.chunks.front());
      s.chunks.pop_front();
      s.buffered -= chunk.size();
      session_buffered -= chunk.size();
      space_cv.notify_all();
      CreditLocked(&s, chunk.size());
      return chunk;
    }
    if (s.remote_fin) return std::string();
    if (ended) return ClosedErrorLocked(StrCat("reading stream ", s.id));
    s.cv.wait(lock);
  }
}

absl::Status SessionCore::Write(StreamState& s, std::string_view data) {
  while (!data.empty()) {
    size_t n;
    {
      std::unique_lock lock(mu);
      while (true) {
        if (closing || ended) return ClosedErrorLocked(StrCat("writing stream ", s.id));
        if (s.reset) return s.reset_status;
        if (s.local_fin) {
          return absl::FailedPreconditionError(
              StrCat("writing stream ", s.id, ": the stream was closed for writing"));
        }
        // Windows are waited on only once the peer has shown it sends
        // WINDOW_UPDATEs (spdystream never does).
        int64_t allowed = std::numeric_limits<int64_t>::max();
        if (stream_flow_control) allowed = std::min(allowed, s.send_window);
        if (session_flow_control) allowed = std::min(allowed, session_send_window);
        if (allowed > 0) {
          n = std::min({data.size(), kSpdyWriteChunkSize, static_cast<size_t>(allowed)});
          break;
        }
        s.cv.wait(lock);
      }
      s.send_window -= static_cast<int64_t>(n);
      session_send_window -= static_cast<int64_t>(n);
    }
    {
      std::lock_guard write_lock(write_mu);
      VMLET_RETURN_IF_ERROR(
          WriteLocked({SpdyData{.stream_id = s.id, .data = std::string(data.substr(0, n))}}));
    }
    data.remove_prefix(n);
  }
  return absl::OkStatus();
}

absl::Status SessionCore::CloseWrite(StreamState& s) {
  {
    std::lock_guard lock(mu);
    if (closing || ended) return ClosedErrorLocked(StrCat("closing stream ", s.id));
    if (s.reset) return s.reset_status;
    if (s.local_fin) return absl::OkStatus();
    s.local_fin = true;
  }
  absl::Status status;
  {
    std::lock_guard write_lock(write_mu);
    status = WriteLocked({SpdyData{.stream_id = s.id, .flags = kSpdyFlagFin}});
  }
  std::lock_guard lock(mu);
  MaybeRetireLocked(s);
  return status;
}

void SessionCore::Reset(StreamState& s, bool abandon) {
  std::lock_guard lock(mu);
  if (abandon) s.abandoned = true;
  DropBufferedLocked(s);
  // Dropping the handle of a stream we have finished writing leaves the
  // peer's side to end on its own; anything else still open is cancelled.
  bool cancel = !s.reset && !(s.local_fin && s.remote_fin) && !(abandon && s.local_fin);
  if (cancel) {
    s.reset = true;
    s.reset_status = absl::CancelledError(StrCat("stream ", s.id, " was reset"));
    if (!closing && !ended) {
      QueueControlLocked(SpdyRstStream{.stream_id = s.id, .status = SpdyRstStatus::kCancel});
    }
  }
  s.cv.notify_all();
  MaybeRetireLocked(s);
}

}  // namespace spdy_internal

SpdySession::SpdySession(std::shared_ptr<spdy_internal::SessionCore> core)
    : core_(std::move(core)) {}

std::shared_ptr<SpdySession> SpdySession::Start(std::unique_ptr<Transport> transport, Role role) {
  auto core = std::make_shared<spdy_internal::SessionCore>(std::move(transport), role);
  std::shared_ptr<SpdySession> session(new SpdySession(core));
  session->reader_ = std::thread([core] { core->ReaderLoop(); });
  session->writer_ = std::thread([core] { core->WriterLoop(); });
  return session;
}

SpdySession::~SpdySession() { Close(); }

absl::StatusOr<std::shared_ptr<Stream>> SpdySession::AcceptStream(absl::Time deadline) {
  return core_->Accept(core_, deadline);
}

absl::StatusOr<std::shared_ptr<Stream>> SpdySession::OpenStream(const Headers& headers,
                                                                absl::Time deadline) {
  return core_->Open(core_, headers, deadline);
}

absl::Status SpdySession::Ping(absl::Time deadline) { return core_->Ping(deadline); }

void SpdySession::Close() {
  core_->Close();
  std::lock_guard lock(join_mu_);
  if (reader_.joinable()) reader_.join();
  if (writer_.joinable()) writer_.join();
  // Nothing uses the connection any more: close it now rather than when
  // the last stream handle goes.
  std::lock_guard write_lock(core_->write_mu);
  std::lock_guard core_lock(core_->mu);
  core_->transport.reset();
  core_->encoder.reset();
}

absl::Status SpdySession::Wait() { return core_->Wait(); }

}  // namespace vmlet::streaming
