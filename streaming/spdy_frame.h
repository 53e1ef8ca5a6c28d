// SPDY/3 frames (SPDY Protocol Draft 3, section 2) as Kubernetes' streaming
// clients speak them through moby/spdystream: the control frames SYN_STREAM,
// SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS and WINDOW_UPDATE,
// and DATA frames. Name/value header blocks are compressed with zlib primed
// with the SPDY/3 dictionary, one compression context per direction of a
// session: SpdyFrameEncoder holds the sending one, SpdyFrameDecoder the
// receiving one.
//
// The decoder is incremental (feed bytes as they arrive, take complete
// frames) and bounded: frame lengths and decompressed header blocks have the
// limits below; anything malformed is an error that ends the byte stream.
#ifndef VMLET_STREAMING_SPDY_FRAME_H_
#define VMLET_STREAMING_SPDY_FRAME_H_

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "streaming/stream.h"

namespace vmlet::streaming {

inline constexpr uint16_t kSpdyVersion = 3;

// Limits on what a peer may send. A DATA frame's payload (spdystream sends
// one frame per Write; Kubernetes' clients copy in 32 KiB pieces).
inline constexpr size_t kSpdyMaxDataFrameLength = 1 << 20;
// A control frame's payload, compressed header block included.
inline constexpr size_t kSpdyMaxControlFrameLength = 512 << 10;
// A header block once decompressed: the cap on a decompression bomb.
inline constexpr size_t kSpdyMaxHeaderBlockSize = 256 << 10;
// The largest stream id, window size and window delta (31 bits).
inline constexpr uint32_t kSpdyMaxStreamId = 0x7fffffff;
inline constexpr uint32_t kSpdyMaxWindow = 0x7fffffff;

// Frame flags.
inline constexpr uint8_t kSpdyFlagFin = 0x01;             // DATA, SYN_*, HEADERS
inline constexpr uint8_t kSpdyFlagUnidirectional = 0x02;  // SYN_STREAM
inline constexpr uint8_t kSpdyFlagClearSettings = 0x01;   // SETTINGS

// RST_STREAM status codes (section 2.4.2). Other values may arrive.
enum class SpdyRstStatus : uint32_t {
  kProtocolError = 1,
  kInvalidStream = 2,
  kRefusedStream = 3,
  kUnsupportedVersion = 4,
  kCancel = 5,
  kInternalError = 6,
  kFlowControlError = 7,
  kStreamInUse = 8,
  kStreamAlreadyClosed = 9,
  kInvalidCredentials = 10,
  kFrameTooLarge = 11,
};
std::string SpdyRstStatusName(SpdyRstStatus status);

// GOAWAY status codes (section 2.6.6).
enum class SpdyGoAwayStatus : uint32_t { kOk = 0, kProtocolError = 1, kInternalError = 2 };
std::string SpdyGoAwayStatusName(SpdyGoAwayStatus status);

// SETTINGS ids (section 2.6.4) that sessions act on.
inline constexpr uint32_t kSpdySettingsMaxConcurrentStreams = 4;
inline constexpr uint32_t kSpdySettingsInitialWindowSize = 7;

struct SpdySynStream {
  uint32_t stream_id = 0;
  uint32_t associated_stream_id = 0;
  uint8_t priority = 0;  // 0 (highest) .. 7
  uint8_t slot = 0;
  uint8_t flags = 0;  // kSpdyFlagFin, kSpdyFlagUnidirectional
  Headers headers;

  friend bool operator==(const SpdySynStream&, const SpdySynStream&) = default;
};

struct SpdySynReply {
  uint32_t stream_id = 0;
  uint8_t flags = 0;  // kSpdyFlagFin
  Headers headers;

  friend bool operator==(const SpdySynReply&, const SpdySynReply&) = default;
};

struct SpdyRstStream {
  uint32_t stream_id = 0;
  SpdyRstStatus status = SpdyRstStatus::kCancel;

  friend bool operator==(const SpdyRstStream&, const SpdyRstStream&) = default;
};

struct SpdySetting {
  uint8_t flags = 0;
  uint32_t id = 0;  // 24 bits
  uint32_t value = 0;

  friend bool operator==(const SpdySetting&, const SpdySetting&) = default;
};

struct SpdySettings {
  uint8_t flags = 0;  // kSpdyFlagClearSettings
  std::vector<SpdySetting> settings;

  friend bool operator==(const SpdySettings&, const SpdySettings&) = default;
};

// Client-initiated pings have odd ids, server-initiated ones even ids.
struct SpdyPing {
  uint32_t id = 0;

  friend bool operator==(const SpdyPing&, const SpdyPing&) = default;
};

struct SpdyGoAway {
  uint32_t last_good_stream_id = 0;
  SpdyGoAwayStatus status = SpdyGoAwayStatus::kOk;

  friend bool operator==(const SpdyGoAway&, const SpdyGoAway&) = default;
};

struct SpdyHeaders {
  uint32_t stream_id = 0;
  uint8_t flags = 0;  // kSpdyFlagFin
  Headers headers;

  friend bool operator==(const SpdyHeaders&, const SpdyHeaders&) = default;
};

// stream_id 0 is the session's window (SPDY/3.1).
struct SpdyWindowUpdate {
  uint32_t stream_id = 0;
  uint32_t delta = 0;  // 1 .. kSpdyMaxWindow

  friend bool operator==(const SpdyWindowUpdate&, const SpdyWindowUpdate&) = default;
};

struct SpdyData {
  uint32_t stream_id = 0;
  uint8_t flags = 0;  // kSpdyFlagFin
  std::string data;

  friend bool operator==(const SpdyData&, const SpdyData&) = default;
};

// A control frame of a type this code does not know (e.g. CREDENTIAL). The
// spec says to ignore it; the decoder skips its payload. Never encoded.
struct SpdyUnknownControl {
  uint16_t type = 0;
  uint8_t flags = 0;

  friend bool operator==(const SpdyUnknownControl&, const SpdyUnknownControl&) = default;
};

using SpdyFrame =
    std::variant<SpdySynStream, SpdySynReply, SpdyRstStream, SpdySettings, SpdyPing, SpdyGoAway,
                 SpdyHeaders, SpdyWindowUpdate, SpdyData, SpdyUnknownControl>;

// "SYN_STREAM", "DATA", ... for messages.
std::string SpdyFrameName(const SpdyFrame& frame);

// The zlib dictionary of SPDY/3 header compression (1423 bytes).
std::string_view SpdyHeaderDictionary();

// The uncompressed name/value header block of `headers` (section 2.6.10):
// names lower-cased, the values of a name that appears more than once
// joined with NUL in one entry (spdystream rejects repeated names). Errors
// for an empty name.
absl::StatusOr<std::string> SerializeSpdyHeaderBlock(const Headers& headers);

// Parses an uncompressed header block: names lower-cased, a value holding
// NUL-separated values becomes one entry per value. Errors for truncated or
// trailing bytes, impossible counts and empty names.
absl::StatusOr<Headers> ParseSpdyHeaderBlock(std::string_view block);

// Turns frames into bytes. Header blocks share one compression context, so
// the frames must reach the peer in the order they were encoded. Not
// thread-safe: the session calls it under its write lock.
class SpdyFrameEncoder {
 public:
  SpdyFrameEncoder();
  ~SpdyFrameEncoder();
  SpdyFrameEncoder(const SpdyFrameEncoder&) = delete;
  SpdyFrameEncoder& operator=(const SpdyFrameEncoder&) = delete;

  // Appends the wire form of `frame` to `out`. Errors (nothing appended) for
  // values the wire cannot carry: stream id 0 where one is needed or above
  // kSpdyMaxStreamId, priority above 7, ping id 0, RST status 0, a window
  // delta of 0 or above kSpdyMaxWindow, a payload above 16 MiB - 1, a header
  // block above kSpdyMaxHeaderBlockSize, and SpdyUnknownControl.
  absl::Status Encode(const SpdyFrame& frame, std::string* out);

 private:
  absl::StatusOr<std::string> Compress(const Headers& headers);

  z_stream deflate_{};
  absl::Status init_status_;
};

// Turns bytes into frames. One thread at a time (the session's reader).
class SpdyFrameDecoder {
 public:
  SpdyFrameDecoder();
  ~SpdyFrameDecoder();
  SpdyFrameDecoder(const SpdyFrameDecoder&) = delete;
  SpdyFrameDecoder& operator=(const SpdyFrameDecoder&) = delete;

  // Adds bytes received from the peer. Call Next() until it returns
  // std::nullopt before adding more: what is buffered then stays below one
  // frame (kSpdyMaxDataFrameLength or kSpdyMaxControlFrameLength, plus its
  // 8-byte header) and the bytes of the last Append.
  void Append(std::string_view bytes);

  // The next complete frame; std::nullopt when more bytes are needed; an
  // error (INVALID_ARGUMENT, or RESOURCE_EXHAUSTED for a limit) when the
  // byte stream is malformed. A frame header is checked as soon as its 8
  // bytes are in, so an oversized length fails without waiting for the
  // payload. After an error every call returns it again.
  absl::StatusOr<std::optional<SpdyFrame>> Next();

  // Bytes added and not yet returned as frames: non-zero at the end of the
  // connection means a truncated frame.
  size_t buffered_bytes() const { return buffer_.size() - offset_; }

 private:
  absl::StatusOr<SpdyFrame> DecodeControl(uint16_t type, uint8_t flags, std::string_view payload);
  absl::StatusOr<Headers> DecompressHeaders(std::string_view compressed);

  std::string buffer_;
  size_t offset_ = 0;  // start of the undecoded bytes in buffer_
  z_stream inflate_{};
  absl::Status status_;  // init failure or the first decoding error: sticky
};

}  // namespace vmlet::streaming

#endif  // VMLET_STREAMING_SPDY_FRAME_H_
