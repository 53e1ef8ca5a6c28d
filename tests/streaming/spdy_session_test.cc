#include "streaming/spdy_session.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "streaming/spdy_frame.h"
#include "streaming/transport.h"

namespace vmlet::streaming {
namespace {

using ::testing::HasSubstr;

absl::Time In(absl::Duration d) { return absl::Now() + d; }

std::pair<int, int> SocketPair() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  return {fds[0], fds[1]};
}

// A client and a server session on the two ends of a socket pair.
struct SessionPair {
  SessionPair() {
    auto [a, b] = SocketPair();
    client = SpdySession::Start(std::make_unique<FdTransport>(a), SpdySession::Role::kClient);
    server = SpdySession::Start(std::make_unique<FdTransport>(b), SpdySession::Role::kServer);
  }
  std::shared_ptr<SpdySession> client;
  std::shared_ptr<SpdySession> server;
};

// Opens a stream from `from` and accepts it on `to`.
std::pair<std::shared_ptr<Stream>, std::shared_ptr<Stream>> OpenPair(SpdySession& from,
                                                                     SpdySession& to,
                                                                     const Headers& headers) {
  auto accepted =
      std::async(std::launch::async, [&] { return to.AcceptStream(In(absl::Seconds(10))); });
  absl::StatusOr<std::shared_ptr<Stream>> opened = from.OpenStream(headers, In(absl::Seconds(10)));
  absl::StatusOr<std::shared_ptr<Stream>> other = accepted.get();
  EXPECT_TRUE(opened.ok()) << opened.status();
  EXPECT_TRUE(other.ok()) << other.status();
  if (!opened.ok() || !other.ok()) return {};
  return {*opened, *other};
}

// Everything until end of stream; an error ends it early.
absl::StatusOr<std::string> ReadAll(Stream& stream) {
  std::string all;
  while (true) {
    absl::StatusOr<std::string> chunk = stream.Read();
    if (!chunk.ok()) return chunk.status();
    if (chunk->empty()) return all;
    all += *chunk;
  }
}

std::string Pattern(size_t size, uint32_t seed) {
  std::string out(size, '\0');
  uint32_t x = seed;
  for (char& c : out) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>(x >> 16);
  }
  return out;
}

size_t ThreadCount() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator("/proc/self/task")) {
    ++n;
  }
  return n;
}

// The other end of a session, speaking frames by hand.
class RawPeer {
 public:
  explicit RawPeer(int fd) : fd_(fd) {}
  ~RawPeer() { Close(); }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd() const { return fd_; }

  void Send(const SpdyFrame& frame) {
    std::string bytes;
    ASSERT_TRUE(encoder_.Encode(frame, &bytes).ok());
    SendBytes(bytes);
  }
  void SendBytes(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0) {
        ADD_FAILURE() << "send: " << errno;
        return;
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }

  // The next frame, or an error: DEADLINE_EXCEEDED after `timeout` without
  // one, UNAVAILABLE at end of stream.
  absl::StatusOr<SpdyFrame> Next(absl::Duration timeout = absl::Seconds(10)) {
    absl::Time deadline = In(timeout);
    while (true) {
      absl::StatusOr<std::optional<SpdyFrame>> next = decoder_.Next();
      if (!next.ok()) return next.status();
      if (next->has_value()) return **next;
      int wait_ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      if (wait_ms <= 0) return absl::DeadlineExceededError("no frame");
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, wait_ms) <= 0) continue;
      char buffer[65536];
      ssize_t n = ::read(fd_, buffer, sizeof buffer);
      if (n <= 0) return absl::UnavailableError("end of stream");
      decoder_.Append(std::string_view(buffer, static_cast<size_t>(n)));
    }
  }

  // The next frame of type T, skipping others (window updates, ...).
  template <typename T>
  absl::StatusOr<T> NextOf(absl::Duration timeout = absl::Seconds(10)) {
    while (true) {
      absl::StatusOr<SpdyFrame> frame = Next(timeout);
      if (!frame.ok()) return frame.status();
      if (auto* f = std::get_if<T>(&*frame)) return *f;
    }
  }

 private:
  int fd_;
  SpdyFrameEncoder encoder_;
  SpdyFrameDecoder decoder_;
};

// A server session and a hand-driven client.
struct RawClientPair {
  RawClientPair() {
    auto [a, b] = SocketPair();
    peer = std::make_unique<RawPeer>(a);
    server = SpdySession::Start(std::make_unique<FdTransport>(b), SpdySession::Role::kServer);
  }
  // The peer goes first, so that the server's Close() need not linger.
  ~RawClientPair() { peer->Close(); }
  std::unique_ptr<RawPeer> peer;
  std::shared_ptr<SpdySession> server;
};

TEST(SpdySessionTest, OpenedStreamCarriesHeadersAndDataBothWays) {
  SessionPair pair;
  Headers headers = {{"streamtype", "stdin"}, {"port", "80"}};
  auto [opened, accepted] = OpenPair(*pair.client, *pair.server, headers);
  ASSERT_NE(opened, nullptr);
  EXPECT_EQ(accepted->headers(), headers);
  EXPECT_EQ(opened->headers(), headers);
  ASSERT_TRUE(opened->Write("ping").ok());
  EXPECT_EQ(*accepted->Read(), "ping");
  ASSERT_TRUE(accepted->Write("pong").ok());
  EXPECT_EQ(*opened->Read(), "pong");
}

TEST(SpdySessionTest, CloseWriteEndsTheStreamForThePeerOnly) {
  SessionPair pair;
  auto [opened, accepted] = OpenPair(*pair.client, *pair.server, {{"streamtype", "stdout"}});
  ASSERT_NE(opened, nullptr);
  ASSERT_TRUE(opened->Write("last words").ok());
  ASSERT_TRUE(opened->CloseWrite().ok());
  EXPECT_TRUE(opened->CloseWrite().ok());  // idempotent
  EXPECT_EQ(*ReadAll(*accepted), "last words");
  EXPECT_EQ(*accepted->Read(), "");  // and again
  absl::Status write = opened->Write("more");
  EXPECT_EQ(write.code(), absl::StatusCode::kFailedPrecondition) << write;
  // The other direction is still open.
  ASSERT_TRUE(accepted->Write("reply").ok());
  ASSERT_TRUE(accepted->CloseWrite().ok());
  EXPECT_EQ(*ReadAll(*opened), "reply");
}

TEST(SpdySessionTest, StreamOpenedFinishedIsAcceptedFinished) {
  RawClientPair pair;
  pair.peer->Send(SpdySynStream{.stream_id = 1, .flags = kSpdyFlagFin, .headers = {{"a", "b"}}});
  absl::StatusOr<std::shared_ptr<Stream>> stream = pair.server->AcceptStream(In(absl::Seconds(5)));
  ASSERT_TRUE(stream.ok()) << stream.status();
  EXPECT_EQ(*(*stream)->Read(), "");
  ASSERT_TRUE(pair.peer->NextOf<SpdySynReply>().ok());
}

TEST(SpdySessionTest, ManyStreamsAtOnce) {
  SessionPair pair;
  constexpr int kStreams = 40;
  // The server echoes every stream it accepts.
  std::thread acceptor([&] {
    std::vector<std::thread> echoes;
    for (int i = 0; i < kStreams; ++i) {
      absl::StatusOr<std::shared_ptr<Stream>> stream =
          pair.server->AcceptStream(In(absl::Seconds(20)));
      if (!stream.ok()) break;
      echoes.emplace_back([stream = *stream] {
        absl::StatusOr<std::string> all = ReadAll(*stream);
        if (all.ok()) (void)stream->Write(HeaderValue(stream->headers(), "name") + ":" + *all);
        (void)stream->CloseWrite();
      });
    }
    for (std::thread& t : echoes) t.join();
  });
  std::vector<std::thread> clients;
  std::atomic<int> good = 0;
  for (int i = 0; i < kStreams; ++i) {
    clients.emplace_back([&, i] {
      std::string name = std::to_string(i);
      absl::StatusOr<std::shared_ptr<Stream>> stream =
          pair.client->OpenStream({{"name", name}}, In(absl::Seconds(20)));
      if (!stream.ok()) return;
      std::string body = Pattern(10000 + i * 100, i);
      if (!(*stream)->Write(body).ok() || !(*stream)->CloseWrite().ok()) return;
      absl::StatusOr<std::string> echo = ReadAll(**stream);
      if (echo.ok() && *echo == name + ":" + body) ++good;
    });
  }
  for (std::thread& t : clients) t.join();
  acceptor.join();
  EXPECT_EQ(good, kStreams);
}

TEST(SpdySessionTest, FourMiBEachWayOnTwoStreamsAtOnce) {
  SessionPair pair;
  constexpr size_t kSize = 4 << 20;
  auto [a_client, a_server] = OpenPair(*pair.client, *pair.server, {{"n", "a"}});
  auto [b_client, b_server] = OpenPair(*pair.client, *pair.server, {{"n", "b"}});
  ASSERT_NE(a_client, nullptr);
  ASSERT_NE(b_client, nullptr);
  struct Flow {
    std::shared_ptr<Stream> from, to;
    uint32_t seed;
  };
  std::vector<Flow> flows = {{a_client, a_server, 1},
                             {a_server, a_client, 2},
                             {b_client, b_server, 3},
                             {b_server, b_client, 4}};
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<std::string>> received(flows.size());
  for (size_t i = 0; i < flows.size(); ++i) {
    threads.emplace_back([&, i] {
      // Odd-sized writes, to cross frame boundaries.
      std::string data = Pattern(kSize, flows[i].seed);
      for (size_t at = 0; at < data.size(); at += 100003) {
        if (!flows[i].from->Write(std::string_view(data).substr(at, 100003)).ok()) return;
      }
      (void)flows[i].from->CloseWrite();
    });
    threads.emplace_back([&, i] { received[i] = ReadAll(*flows[i].to); });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < flows.size(); ++i) {
    ASSERT_TRUE(received[i].ok()) << received[i].status();
    EXPECT_EQ(received[i]->size(), kSize);
    EXPECT_TRUE(*received[i] == Pattern(kSize, flows[i].seed)) << "flow " << i;
  }
}

TEST(SpdySessionTest, ResetFailsTheStreamOnBothSides) {
  SessionPair pair;
  auto [opened, accepted] = OpenPair(*pair.client, *pair.server, {{"n", "1"}});
  ASSERT_NE(opened, nullptr);
  ASSERT_TRUE(opened->Write("before").ok());
  EXPECT_EQ(*accepted->Read(), "before");
  std::thread reset([&] {
    absl::SleepFor(absl::Milliseconds(100));
    opened->Reset();
  });
  // The peer's RST wakes a blocked Read.
  absl::StatusOr<std::string> read = accepted->Read();
  reset.join();
  EXPECT_EQ(read.status().code(), absl::StatusCode::kAborted) << read.status();
  EXPECT_THAT(std::string(read.status().message()), HasSubstr("reset by the peer (CANCEL)"));
  EXPECT_EQ(accepted->Write("x").code(), absl::StatusCode::kAborted);
  EXPECT_EQ(opened->Read().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(opened->Write("x").code(), absl::StatusCode::kCancelled);
  // The session goes on.
  auto [again, again_accepted] = OpenPair(*pair.client, *pair.server, {{"n", "2"}});
  ASSERT_NE(again, nullptr);
  ASSERT_TRUE(again->Write("still here").ok());
  EXPECT_EQ(*again_accepted->Read(), "still here");
}

TEST(SpdySessionTest, PingsAreAnswered) {
  SessionPair pair;
  EXPECT_TRUE(pair.client->Ping(In(absl::Seconds(5))).ok());
  EXPECT_TRUE(pair.server->Ping(In(absl::Seconds(5))).ok());

  RawClientPair raw;
  raw.peer->Send(SpdyPing{.id = 7});
  absl::StatusOr<SpdyPing> echo = raw.peer->NextOf<SpdyPing>();
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(echo->id, 7u);
  // The server's own pings are even and the raw peer does not answer.
  absl::Status unanswered = raw.server->Ping(In(absl::Milliseconds(200)));
  EXPECT_EQ(unanswered.code(), absl::StatusCode::kDeadlineExceeded);
  absl::StatusOr<SpdyPing> ping = raw.peer->NextOf<SpdyPing>();
  ASSERT_TRUE(ping.ok());
  EXPECT_EQ(ping->id % 2, 0u);
}

TEST(SpdySessionTest, PeerDisconnectWakesBlockedReadAndAccept) {
  RawClientPair pair;
  pair.peer->Send(SpdySynStream{.stream_id = 1, .headers = {{"a", "b"}}});
  pair.peer->Send(SpdyData{.stream_id = 1, .data = "buffered"});
  absl::StatusOr<std::shared_ptr<Stream>> stream = pair.server->AcceptStream(In(absl::Seconds(5)));
  ASSERT_TRUE(stream.ok());
  auto accept = std::async(std::launch::async,
                           [&] { return pair.server->AcceptStream(absl::InfiniteFuture()); });
  EXPECT_EQ(*(*stream)->Read(), "buffered");
  auto read = std::async(std::launch::async, [&] { return (*stream)->Read(); });
  absl::SleepFor(absl::Milliseconds(100));
  pair.peer->Close();
  absl::StatusOr<std::string> read_result = read.get();
  EXPECT_EQ(read_result.status().code(), absl::StatusCode::kUnavailable) << read_result.status();
  EXPECT_THAT(std::string(read_result.status().message()), HasSubstr("connection closed"));
  absl::StatusOr<std::shared_ptr<Stream>> accept_result = accept.get();
  EXPECT_EQ(accept_result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(pair.server->Wait().ok());  // a close between frames is clean
  EXPECT_EQ((*stream)->Write("x").code(), absl::StatusCode::kUnavailable);
}

TEST(SpdySessionTest, EndOfStreamInsideAFrameIsAnError) {
  RawClientPair pair;
  pair.peer->SendBytes(std::string("\x80\x03\x00\x06\x00\x00", 6));
  pair.peer->Close();
  absl::Status status = pair.server->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("in the middle of a frame"));
}

TEST(SpdySessionTest, GarbageEndsOnlyThatSession) {
  SessionPair healthy;
  RawClientPair garbage;
  garbage.peer->Send(SpdySynStream{.stream_id = 1, .headers = {{"a", "b"}}});
  absl::StatusOr<std::shared_ptr<Stream>> stream =
      garbage.server->AcceptStream(In(absl::Seconds(5)));
  ASSERT_TRUE(stream.ok());
  garbage.peer->SendBytes("GET / HTTP/1.1\r\nHost: nonsense\r\n\r\n");
  absl::Status status = garbage.server->Wait();
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("SPDY protocol error"));
  // The peer is told why, then the connection ends.
  absl::StatusOr<SpdyGoAway> goaway = garbage.peer->NextOf<SpdyGoAway>();
  ASSERT_TRUE(goaway.ok()) << goaway.status();
  EXPECT_EQ(goaway->status, SpdyGoAwayStatus::kProtocolError);
  EXPECT_EQ(goaway->last_good_stream_id, 1u);
  EXPECT_EQ(garbage.peer->Next().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ((*stream)->Read().status().code(), absl::StatusCode::kUnavailable);
  // The other session is untouched.
  auto [opened, accepted] = OpenPair(*healthy.client, *healthy.server, {{"n", "1"}});
  ASSERT_NE(opened, nullptr);
  ASSERT_TRUE(opened->Write("fine").ok());
  EXPECT_EQ(*accepted->Read(), "fine");
}

TEST(SpdySessionTest, StreamIdThatGoesBackwardsIsAProtocolError) {
  RawClientPair pair;
  pair.peer->Send(SpdySynStream{.stream_id = 5});
  pair.peer->Send(SpdySynStream{.stream_id = 3});
  absl::Status status = pair.server->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("expected a new odd id above 5"));
}

TEST(SpdySessionTest, GoAwayFromThePeerEndsTheSession) {
  RawClientPair pair;
  pair.peer->Send(SpdySynStream{.stream_id = 1});
  pair.peer->Send(SpdyData{.stream_id = 1, .flags = kSpdyFlagFin, .data = "done"});
  pair.peer->Send(SpdyGoAway{.last_good_stream_id = 0});
  EXPECT_TRUE(pair.server->Wait().ok());
  // Streams that arrived first are still handed out, with their data.
  absl::StatusOr<std::shared_ptr<Stream>> stream = pair.server->AcceptStream(In(absl::Seconds(1)));
  ASSERT_TRUE(stream.ok()) << stream.status();
  EXPECT_EQ(*ReadAll(**stream), "done");
  EXPECT_EQ(pair.server->AcceptStream(In(absl::Seconds(1))).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(pair.server->OpenStream({}, In(absl::Seconds(1))).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(SpdySessionTest, AcceptAndOpenHonourDeadlines) {
  RawClientPair pair;
  EXPECT_EQ(pair.server->AcceptStream(In(absl::Milliseconds(50))).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  // The raw peer never replies to the server's SYN_STREAM.
  absl::StatusOr<std::shared_ptr<Stream>> opened =
      pair.server->OpenStream({{"x", "y"}}, In(absl::Milliseconds(100)));
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDeadlineExceeded) << opened.status();
  absl::StatusOr<SpdySynStream> syn = pair.peer->NextOf<SpdySynStream>();
  ASSERT_TRUE(syn.ok());
  EXPECT_EQ(syn->stream_id, 2u);  // servers open even ids
  EXPECT_EQ(syn->headers, (Headers{{"x", "y"}}));
  absl::StatusOr<SpdyRstStream> rst = pair.peer->NextOf<SpdyRstStream>();
  ASSERT_TRUE(rst.ok());
  EXPECT_EQ(rst->stream_id, 2u);
  EXPECT_EQ(rst->status, SpdyRstStatus::kCancel);
}

TEST(SpdySessionTest, RefusedOpenIsAborted) {
  RawClientPair pair;
  auto opened = std::async(std::launch::async,
                           [&] { return pair.server->OpenStream({}, In(absl::Seconds(5))); });
  absl::StatusOr<SpdySynStream> syn = pair.peer->NextOf<SpdySynStream>();
  ASSERT_TRUE(syn.ok());
  pair.peer->Send(
      SpdyRstStream{.stream_id = syn->stream_id, .status = SpdyRstStatus::kRefusedStream});
  absl::StatusOr<std::shared_ptr<Stream>> result = opened.get();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("refused"));
}

TEST(SpdySessionTest, StreamsPastTheLimitAreRefused) {
  RawClientPair pair;
  for (uint32_t i = 0; i <= kSpdyMaxConcurrentStreams; ++i) {
    pair.peer->Send(SpdySynStream{.stream_id = 2 * i + 1});
  }
  uint32_t last = 2 * static_cast<uint32_t>(kSpdyMaxConcurrentStreams) + 1;
  size_t replies = 0;
  while (true) {
    absl::StatusOr<SpdyFrame> frame = pair.peer->Next();
    ASSERT_TRUE(frame.ok()) << frame.status();
    if (auto* reply = std::get_if<SpdySynReply>(&*frame)) {
      EXPECT_LT(reply->stream_id, last);
      ++replies;
    } else if (auto* rst = std::get_if<SpdyRstStream>(&*frame)) {
      EXPECT_EQ(rst->stream_id, last);
      EXPECT_EQ(rst->status, SpdyRstStatus::kRefusedStream);
      break;
    }
  }
  EXPECT_EQ(replies, kSpdyMaxConcurrentStreams);
  // Once one stream is done, a new one fits.
  absl::StatusOr<std::shared_ptr<Stream>> first = pair.server->AcceptStream(In(absl::Seconds(5)));
  ASSERT_TRUE(first.ok());
  (*first)->Reset();
  pair.peer->Send(SpdySynStream{.stream_id = last + 2});
  while (true) {
    absl::StatusOr<SpdyFrame> frame = pair.peer->Next();
    ASSERT_TRUE(frame.ok()) << frame.status();
    if (auto* reply = std::get_if<SpdySynReply>(&*frame)) {
      EXPECT_EQ(reply->stream_id, last + 2);
      break;
    }
    ASSERT_TRUE(std::holds_alternative<SpdyRstStream>(*frame));
    EXPECT_EQ(std::get<SpdyRstStream>(*frame).status, SpdyRstStatus::kCancel);
  }
}

TEST(SpdySessionTest, StreamsPastTheHeaderBudgetAreRefused) {
  RawClientPair pair;
  Headers big = {{"big", std::string(200000, 'x')}};
  for (uint32_t id = 1; id <= 11; id += 2)
    pair.peer->Send(SpdySynStream{.stream_id = id, .headers = big});
  for (uint32_t id = 1; id <= 9; id += 2) {
    absl::StatusOr<SpdySynReply> reply = pair.peer->NextOf<SpdySynReply>();
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->stream_id, id);
  }
  absl::StatusOr<SpdyRstStream> rst = pair.peer->NextOf<SpdyRstStream>();
  ASSERT_TRUE(rst.ok()) << rst.status();
  EXPECT_EQ(rst->stream_id, 11u);
  EXPECT_EQ(rst->status, SpdyRstStatus::kRefusedStream);
}

TEST(SpdySessionTest, DataDroppedAfterAResetStillCreditsTheSession) {
  RawClientPair pair;
  pair.peer->Send(SpdySynStream{.stream_id = 1});
  absl::StatusOr<std::shared_ptr<Stream>> stream = pair.server->AcceptStream(In(absl::Seconds(5)));
  ASSERT_TRUE(stream.ok());
  (*stream)->Reset();
  ASSERT_TRUE(pair.peer->NextOf<SpdyRstStream>().ok());
  pair.peer->Send(SpdyData{.stream_id = 1, .data = std::string(40000, 'd')});
  absl::StatusOr<SpdyWindowUpdate> update = pair.peer->NextOf<SpdyWindowUpdate>();
  ASSERT_TRUE(update.ok()) << update.status();
  EXPECT_EQ(update->stream_id, 0u);
  EXPECT_EQ(update->delta, 40000u);
}

TEST(SpdySessionTest, UnreadDataHoldsTheWriterBack) {
  SessionPair pair;
  auto [opened, accepted] = OpenPair(*pair.client, *pair.server, {{"n", "1"}});
  ASSERT_NE(opened, nullptr);
  constexpr size_t kSize = 8 << 20;  // well past the buffers on the way
  std::string data = Pattern(kSize, 9);
  auto writer = std::async(std::launch::async, [&] {
    absl::Status status = opened->Write(data);
    if (status.ok()) status = opened->CloseWrite();
    return status;
  });
  EXPECT_EQ(writer.wait_for(std::chrono::milliseconds(500)), std::future_status::timeout);
  absl::StatusOr<std::string> all = ReadAll(*accepted);
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(*all == data);
  EXPECT_TRUE(writer.get().ok());
}

TEST(SpdySessionTest, WritesDoNotWaitForWindowUpdatesThatNeverCome) {
  // Like spdystream: answers SYN_STREAM, never sends WINDOW_UPDATE.
  auto [a, b] = SocketPair();
  RawPeer peer(a);
  std::shared_ptr<SpdySession> client =
      SpdySession::Start(std::make_unique<FdTransport>(b), SpdySession::Role::kClient);
  auto opened =
      std::async(std::launch::async, [&] { return client->OpenStream({}, In(absl::Seconds(5))); });
  absl::StatusOr<SpdySynStream> syn = peer.NextOf<SpdySynStream>();
  ASSERT_TRUE(syn.ok());
  EXPECT_EQ(syn->stream_id, 1u);
  peer.Send(SpdySynReply{.stream_id = 1});
  absl::StatusOr<std::shared_ptr<Stream>> stream = opened.get();
  ASSERT_TRUE(stream.ok());
  constexpr size_t kSize = 1 << 20;
  auto writer = std::async(std::launch::async, [&] {
    absl::Status status = (*stream)->Write(Pattern(kSize, 5));
    if (status.ok()) status = (*stream)->CloseWrite();
    return status;
  });
  std::string received;
  while (true) {
    absl::StatusOr<SpdyData> data = peer.NextOf<SpdyData>();
    ASSERT_TRUE(data.ok()) << data.status();
    EXPECT_LE(data->data.size(), kSpdyWriteChunkSize);
    received += data->data;
    if (data->flags & kSpdyFlagFin) break;
  }
  EXPECT_TRUE(received == Pattern(kSize, 5));
  EXPECT_TRUE(writer.get().ok());
  peer.Close();  // so that the client's Close() need not linger
}

TEST(SpdySessionTest, WindowsAreHonouredOnceThePeerSendsThem) {
  RawClientPair pair;
  pair.peer->Send(
      SpdySettings{.settings = {{.id = kSpdySettingsInitialWindowSize, .value = 1000}}});
  pair.peer->Send(SpdySynStream{.stream_id = 1});
  absl::StatusOr<std::shared_ptr<Stream>> stream = pair.server->AcceptStream(In(absl::Seconds(5)));
  ASSERT_TRUE(stream.ok());
  auto writer =
      std::async(std::launch::async, [&] { return (*stream)->Write(std::string(5000, 'w')); });
  size_t received = 0;
  while (received < 1000) {
    absl::StatusOr<SpdyData> data = pair.peer->NextOf<SpdyData>();
    ASSERT_TRUE(data.ok()) << data.status();
    received += data->data.size();
  }
  EXPECT_EQ(received, 1000u);
  EXPECT_EQ(pair.peer->NextOf<SpdyData>(absl::Milliseconds(200)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  pair.peer->Send(SpdyWindowUpdate{.stream_id = 1, .delta = 4000});
  while (received < 5000) {
    absl::StatusOr<SpdyData> data = pair.peer->NextOf<SpdyData>();
    ASSERT_TRUE(data.ok()) << data.status();
    received += data->data.size();
  }
  EXPECT_EQ(received, 5000u);
  EXPECT_TRUE(writer.get().ok());
}

TEST(SpdySessionTest, ReadersCreditThePeer) {
  RawClientPair pair;
  pair.peer->Send(SpdySynStream{.stream_id = 1});
  absl::StatusOr<std::shared_ptr<Stream>> stream = pair.server->AcceptStream(In(absl::Seconds(5)));
  ASSERT_TRUE(stream.ok());
  pair.peer->Send(SpdyData{.stream_id = 1, .data = std::string(40000, 'd')});
  EXPECT_EQ((*stream)->Read()->size(), 40000u);
  bool stream_update = false, session_update = false;
  while (!stream_update || !session_update) {
    absl::StatusOr<SpdyWindowUpdate> update = pair.peer->NextOf<SpdyWindowUpdate>();
    ASSERT_TRUE(update.ok()) << update.status();
    EXPECT_EQ(update->delta, 40000u);
    (update->stream_id == 0 ? session_update : stream_update) = true;
  }
}

TEST(SpdySessionTest, CloseSendsGoAwayFailsStreamsAndJoinsThreads) {
  size_t threads_before = ThreadCount();
  SessionPair pair;
  auto [opened, accepted] = OpenPair(*pair.client, *pair.server, {{"n", "1"}});
  ASSERT_NE(opened, nullptr);
  EXPECT_EQ(ThreadCount(), threads_before + 4);
  absl::StatusOr<std::string> blocked_read;
  std::thread blocked([&] { blocked_read = opened->Read(); });
  absl::SleepFor(absl::Milliseconds(50));
  absl::Time start = absl::Now();
  pair.client->Close();
  // The server answered the GOAWAY by closing; no linger timeout needed.
  EXPECT_LT(absl::Now() - start, kSpdyCloseLinger);
  blocked.join();
  EXPECT_EQ(blocked_read.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(opened->Write("x").message()), HasSubstr("closed by Close()"));
  EXPECT_TRUE(pair.client->Wait().ok());
  EXPECT_TRUE(pair.server->Wait().ok());
  EXPECT_EQ(accepted->Read().status().code(), absl::StatusCode::kUnavailable);
  pair.client->Close();  // idempotent
  pair.server->Close();
  EXPECT_EQ(ThreadCount(), threads_before);
}

TEST(SpdySessionTest, CloseLingersAtMostTheLimitForASilentPeer) {
  RawClientPair pair;
  absl::Time start = absl::Now();
  pair.server->Close();
  absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, kSpdyCloseLinger - absl::Milliseconds(50));
  EXPECT_LT(took, kSpdyCloseLinger + absl::Seconds(2));
  absl::StatusOr<SpdyGoAway> goaway = pair.peer->NextOf<SpdyGoAway>();
  ASSERT_TRUE(goaway.ok());
  EXPECT_EQ(goaway->status, SpdyGoAwayStatus::kOk);
}

TEST(SpdySessionTest, StreamsOutliveTheirSession) {
  std::shared_ptr<Stream> opened, accepted;
  {
    SessionPair pair;
    std::tie(opened, accepted) = OpenPair(*pair.client, *pair.server, {{"n", "1"}});
    ASSERT_NE(opened, nullptr);
  }
  EXPECT_EQ(opened->Read().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(opened->Write("x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(accepted->CloseWrite().code(), absl::StatusCode::kUnavailable);
  accepted->Reset();
  EXPECT_EQ(accepted->headers(), (Headers{{"n", "1"}}));
}

TEST(SpdySessionTest, DroppedHandleCancelsAHalfOpenStream) {
  RawClientPair pair;
  pair.peer->Send(SpdySynStream{.stream_id = 1});
  {
    absl::StatusOr<std::shared_ptr<Stream>> stream =
        pair.server->AcceptStream(In(absl::Seconds(5)));
    ASSERT_TRUE(stream.ok());
  }
  absl::StatusOr<SpdyRstStream> rst = pair.peer->NextOf<SpdyRstStream>();
  ASSERT_TRUE(rst.ok());
  EXPECT_EQ(rst->stream_id, 1u);
  EXPECT_EQ(rst->status, SpdyRstStatus::kCancel);
}

}  // namespace
}  // namespace vmlet::streaming
