#include "streaming/spdy_frame.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <utility>

#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::streaming {
namespace {

inline constexpr uint16_t kTypeSynStream = 1;
inline constexpr uint16_t kTypeSynReply = 2;
inline constexpr uint16_t kTypeRstStream = 3;
inline constexpr uint16_t kTypeSettings = 4;
inline constexpr uint16_t kTypePing = 6;
inline constexpr uint16_t kTypeGoAway = 7;
inline constexpr uint16_t kTypeHeaders = 8;
inline constexpr uint16_t kTypeWindowUpdate = 9;

inline constexpr size_t kFrameHeaderLength = 8;
// The 24-bit length field of every frame.
inline constexpr size_t kMaxWireLength = 0xffffff;
// Output grows in steps of this while compressing or decompressing.
inline constexpr size_t kZlibChunk = 16 << 10;

void PutU8(std::string* out, uint8_t value) { out->push_back(static_cast<char>(value)); }

void PutU16(std::string* out, uint16_t value) {
  PutU8(out, static_cast<uint8_t>(value >> 8));
  PutU8(out, static_cast<uint8_t>(value));
}

void PutU32(std::string* out, uint32_t value) {
  PutU16(out, static_cast<uint16_t>(value >> 16));
  PutU16(out, static_cast<uint16_t>(value));
}

uint32_t GetU32(std::string_view bytes, size_t at) {
  auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + i])); };
  return byte(0) << 24 | byte(1) << 16 | byte(2) << 8 | byte(3);
}

// The 8-byte header of a control frame: control bit, version, type, flags,
// 24-bit length.
void PutControlHeader(std::string* out, uint16_t type, uint8_t flags, size_t length) {
  PutU16(out, 0x8000 | kSpdyVersion);
  PutU16(out, type);
  PutU32(out, static_cast<uint32_t>(flags) << 24 | static_cast<uint32_t>(length));
}

absl::Status CheckStreamId(uint32_t id, std::string_view frame) {
  if (id == 0 || id > kSpdyMaxStreamId) {
    return absl::InvalidArgumentError(
        StrCat(frame, " stream id ", id, " is out of range, expected 1 to 2147483647"));
  }
  return absl::OkStatus();
}

std::string ZlibMessage(const z_stream& stream, int code) {
  return stream.msg != nullptr ? std::string(stream.msg) : StrCat("zlib error ", code);
}

}  // namespace

std::string SpdyRstStatusName(SpdyRstStatus status) {
  switch (status) {
    case SpdyRstStatus::kProtocolError:
      return "PROTOCOL_ERROR";
    case SpdyRstStatus::kInvalidStream:
      return "INVALID_STREAM";
    case SpdyRstStatus::kRefusedStream:
      return "REFUSED_STREAM";
    case SpdyRstStatus::kUnsupportedVersion:
      return "UNSUPPORTED_VERSION";
    case SpdyRstStatus::kCancel:
      return "CANCEL";
    case SpdyRstStatus::kInternalError:
      return "INTERNAL_ERROR";
    case SpdyRstStatus::kFlowControlError:
      return "FLOW_CONTROL_ERROR";
    case SpdyRstStatus::kStreamInUse:
      return "STREAM_IN_USE";
    case SpdyRstStatus::kStreamAlreadyClosed:
      return "STREAM_ALREADY_CLOSED";
    case SpdyRstStatus::kInvalidCredentials:
      return "INVALID_CREDENTIALS";
    case SpdyRstStatus::kFrameTooLarge:
      return "FRAME_TOO_LARGE";
  }
  return StrCat("status ", static_cast<uint32_t>(status));
}

std::string SpdyGoAwayStatusName(SpdyGoAwayStatus status) {
  switch (status) {
    case SpdyGoAwayStatus::kOk:
      return "OK";
    case SpdyGoAwayStatus::kProtocolError:
      return "PROTOCOL_ERROR";
    case SpdyGoAwayStatus::kInternalError:
      return "INTERNAL_ERROR";
  }
  return StrCat("status ", static_cast<uint32_t>(status));
}

std::string SpdyFrameName(const SpdyFrame& frame) {
  struct Namer {
    std::string operator()(const SpdySynStream&) const { return "SYN_STREAM"; }
    std::string operator()(const SpdySynReply&) const { return "SYN_REPLY"; }
    std::string operator()(const SpdyRstStream&) const { return "RST_STREAM"; }
    std::string operator()(const SpdySettings&) const { return "SETTINGS"; }
    std::string operator()(const SpdyPing&) const { return "PING"; }
    std::string operator()(const SpdyGoAway&) const { return "GOAWAY"; }
    std::string operator()(const SpdyHeaders&) const { return "HEADERS"; }
    std::string operator()(const SpdyWindowUpdate&) const { return "WINDOW_UPDATE"; }
    std::string operator()(const SpdyData&) const { return "DATA"; }
    std::string operator()(const SpdyUnknownControl& f) const {
      return StrCat("control frame of type ", f.type);
    }
  };
  return std::visit(Namer{}, frame);
}

// The dictionary is specified in SPDY Protocol Draft 3, section 2.6.10.1
// (Compression): the listed header names and values, each preceded by its
// length as a 32-bit big-endian number, followed by a run of common status
// lines, dates and content types without lengths. It is built here from
// those two parts; the tests check its size and Adler-32 (0xe3c6a7c2, the
// DICTID every SPDY/3 header stream starts with).
std::string_view SpdyHeaderDictionary() {
  static const std::string* const dictionary = [] {
    static constexpr const char* kWords[] = {
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    };
    static constexpr const char* kTail[] = {
        // Status codes, then the reason phrases of some of them.
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504"
        "505",
        "203 Non-Authoritative Information",
        "204 No Content",
        "301 Moved Permanently",
        "400 Bad Request",
        "401 Unauthorized",
        "403 Forbidden",
        "404 Not Found",
        "500 Internal Server Error",
        "501 Not Implemented",
        "503 Service Unavailable",
        // Pieces of dates.
        "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
        // Common values.
        "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,"
        "text/plain,text/javascript,public",
        "private",
        "max-age=",
        "gzip,deflate,sdch",
        "charset=utf-8",
        "charset=iso-8859-1,utf-,*,enq=0.",
    };
    auto* bytes = new std::string();
    for (const char* word : kWords) {
      PutU32(bytes, static_cast<uint32_t>(std::strlen(word)));
      bytes->append(word);
    }
    for (const char* piece : kTail) bytes->append(piece);
    return bytes;
  }();
  return *dictionary;
}

absl::StatusOr<std::string> SerializeSpdyHeaderBlock(const Headers& headers) {
  // Names in order of first appearance, each with its values joined by NUL.
  std::vector<std::pair<std::string, std::string>> entries;
  std::map<std::string, size_t> index;
  for (const auto& [name, value] : headers) {
    if (name.empty()) {
      return absl::InvalidArgumentError("header name is empty, expected a non-empty name");
    }
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    auto [it, inserted] = index.emplace(lower, entries.size());
    if (inserted) {
      entries.emplace_back(std::move(lower), value);
    } else {
      std::string& joined = entries[it->second].second;
      joined.push_back('\0');
      joined.append(value);
    }
  }
  std::string block;
  PutU32(&block, static_cast<uint32_t>(entries.size()));
  for (const auto& [name, value] : entries) {
    PutU32(&block, static_cast<uint32_t>(name.size()));
    block.append(name);
    PutU32(&block, static_cast<uint32_t>(value.size()));
    block.append(value);
  }
  if (block.size() > kSpdyMaxHeaderBlockSize) {
    return absl::InvalidArgumentError(StrCat("header block of ", block.size(),
                                             " bytes is too large, the limit is ",
                                             kSpdyMaxHeaderBlockSize));
  }
  return block;
}

absl::StatusOr<Headers> ParseSpdyHeaderBlock(std::string_view block) {
  size_t at = 0;
  auto read_length = [&](std::string_view what) -> absl::StatusOr<uint32_t> {
    if (block.size() - at < 4) {
      return absl::InvalidArgumentError(
          StrCat("header block is truncated: no room for the ", what, " at byte ", at));
    }
    uint32_t value = GetU32(block, at);
    at += 4;
    return value;
  };
  auto read_string = [&](std::string_view what) -> absl::StatusOr<std::string_view> {
    VMLET_ASSIGN_OR_RETURN(uint32_t length, read_length(StrCat(what, " length")));
    if (length > block.size() - at) {
      return absl::InvalidArgumentError(
          StrCat("header block ", what, " length ", length, " runs past the end of the block"));
    }
    std::string_view text = block.substr(at, length);
    at += length;
    return text;
  };
  VMLET_ASSIGN_OR_RETURN(uint32_t count, read_length("header count"));
  // Every entry takes at least 8 bytes (two lengths).
  if (count > (block.size() - at) / 8) {
    return absl::InvalidArgumentError(StrCat("header block claims ", count,
                                             " headers but holds only ", block.size() - at,
                                             " more bytes"));
  }
  Headers headers;
  for (uint32_t i = 0; i < count; ++i) {
    VMLET_ASSIGN_OR_RETURN(std::string_view name_view, read_string("name"));
    if (name_view.empty()) {
      return absl::InvalidArgumentError(
          StrCat("header block entry ", i, " has an empty name, expected a non-empty name"));
    }
    std::string name(name_view);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    VMLET_ASSIGN_OR_RETURN(std::string_view value, read_string("value"));
    while (true) {
      size_t nul = value.find('\0');
      headers.emplace_back(name, std::string(value.substr(0, nul)));
      if (nul == std::string_view::npos) break;
      value.remove_prefix(nul + 1);
    }
  }
  if (at != block.size()) {
    return absl::InvalidArgumentError(
        StrCat("header block has ", block.size() - at, " bytes after its last header"));
  }
  return headers;
}

SpdyFrameEncoder::SpdyFrameEncoder() {
  // Best compression, as spdystream's Go zlib writer uses.
  int rc = deflateInit2(&deflate_, Z_BEST_COMPRESSION, Z_DEFLATED, 15, 8, Z_DEFAULT_STRATEGY);
  if (rc != Z_OK) {
    init_status_ = absl::ResourceExhaustedError(
        StrCat("initializing SPDY header compression: ", ZlibMessage(deflate_, rc)));
    return;
  }
  std::string_view dictionary = SpdyHeaderDictionary();
  rc = deflateSetDictionary(&deflate_, reinterpret_cast<const Bytef*>(dictionary.data()),
                            static_cast<uInt>(dictionary.size()));
  if (rc != Z_OK) {
    init_status_ = absl::InternalError(
        StrCat("setting the SPDY header dictionary: ", ZlibMessage(deflate_, rc)));
  }
}

SpdyFrameEncoder::~SpdyFrameEncoder() { deflateEnd(&deflate_); }

absl::StatusOr<std::string> SpdyFrameEncoder::Compress(const Headers& headers) {
  VMLET_RETURN_IF_ERROR(init_status_);
  VMLET_ASSIGN_OR_RETURN(std::string block, SerializeSpdyHeaderBlock(headers));
  std::string out;
  deflate_.next_in = reinterpret_cast<Bytef*>(block.data());
  deflate_.avail_in = static_cast<uInt>(block.size());
  // A sync flush ends every header block on a byte boundary, so the peer
  // can decompress it without the next one.
  do {
    size_t produced = out.size();
    out.resize(produced + kZlibChunk);
    deflate_.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    deflate_.avail_out = static_cast<uInt>(kZlibChunk);
    int rc = deflate(&deflate_, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      // The context is now unusable for the peer as well.
      init_status_ = absl::InternalError(
          StrCat("compressing a SPDY header block: ", ZlibMessage(deflate_, rc)));
      return init_status_;
    }
    out.resize(out.size() - deflate_.avail_out);
  } while (deflate_.avail_out == 0);
  return out;
}

absl::Status SpdyFrameEncoder::Encode(const SpdyFrame& frame, std::string* out) {
  struct Visitor {
    SpdyFrameEncoder* encoder;
    std::string* out;

    absl::Status operator()(const SpdySynStream& f) const {
      VMLET_RETURN_IF_ERROR(CheckStreamId(f.stream_id, "SYN_STREAM"));
      if (f.associated_stream_id > kSpdyMaxStreamId || f.priority > 7) {
        return absl::InvalidArgumentError(
            StrCat("SYN_STREAM associated stream id ", f.associated_stream_id, " or priority ",
                   f.priority, " is out of range, expected at most 2147483647 and 7"));
      }
      VMLET_ASSIGN_OR_RETURN(std::string block, encoder->Compress(f.headers));
      if (block.size() + 10 > kMaxWireLength) {
        return absl::InvalidArgumentError("SYN_STREAM header block does not fit in a frame");
      }
      PutControlHeader(out, kTypeSynStream, f.flags, block.size() + 10);
      PutU32(out, f.stream_id);
      PutU32(out, f.associated_stream_id);
      PutU8(out, static_cast<uint8_t>(f.priority << 5));
      PutU8(out, f.slot);
      out->append(block);
      return absl::OkStatus();
    }
    absl::Status operator()(const SpdySynReply& f) const {
      return HeaderFrame(kTypeSynReply, "SYN_REPLY", f.stream_id, f.flags, f.headers);
    }
    absl::Status operator()(const SpdyHeaders& f) const {
      return HeaderFrame(kTypeHeaders, "HEADERS", f.stream_id, f.flags, f.headers);
    }
    absl::Status HeaderFrame(uint16_t type, std::string_view name, uint32_t stream_id,
                             uint8_t flags, const Headers& headers) const {
      VMLET_RETURN_IF_ERROR(CheckStreamId(stream_id, name));
      VMLET_ASSIGN_OR_RETURN(std::string block, encoder->Compress(headers));
      if (block.size() + 4 > kMaxWireLength) {
        return absl::InvalidArgumentError(StrCat(name, " header block does not fit in a frame"));
      }
      PutControlHeader(out, type, flags, block.size() + 4);
      PutU32(out, stream_id);
      out->append(block);
      return absl::OkStatus();
    }
    absl::Status operator()(const SpdyRstStream& f) const {
      VMLET_RETURN_IF_ERROR(CheckStreamId(f.stream_id, "RST_STREAM"));
      if (static_cast<uint32_t>(f.status) == 0) {
        return absl::InvalidArgumentError("RST_STREAM status 0 is invalid, expected 1 or more");
      }
      PutControlHeader(out, kTypeRstStream, 0, 8);
      PutU32(out, f.stream_id);
      PutU32(out, static_cast<uint32_t>(f.status));
      return absl::OkStatus();
    }
    absl::Status operator()(const SpdySettings& f) const {
      if (f.settings.size() > (kMaxWireLength - 4) / 8) {
        return absl::InvalidArgumentError("SETTINGS has too many entries for one frame");
      }
      for (const SpdySetting& setting : f.settings) {
        if (setting.id > 0xffffff) {
          return absl::InvalidArgumentError(
              StrCat("SETTINGS id ", setting.id, " does not fit in 24 bits"));
        }
      }
      PutControlHeader(out, kTypeSettings, f.flags, 4 + 8 * f.settings.size());
      PutU32(out, static_cast<uint32_t>(f.settings.size()));
      for (const SpdySetting& setting : f.settings) {
        PutU32(out, static_cast<uint32_t>(setting.flags) << 24 | setting.id);
        PutU32(out, setting.value);
      }
      return absl::OkStatus();
    }
    absl::Status operator()(const SpdyPing& f) const {
      // spdystream ends the connection on a ping id of 0.
      if (f.id == 0) return absl::InvalidArgumentError("PING id 0 is invalid, expected 1 or more");
      PutControlHeader(out, kTypePing, 0, 4);
      PutU32(out, f.id);
      return absl::OkStatus();
    }
    absl::Status operator()(const SpdyGoAway& f) const {
      if (f.last_good_stream_id > kSpdyMaxStreamId) {
        return absl::InvalidArgumentError(StrCat("GOAWAY last good stream id ",
                                                 f.last_good_stream_id,
                                                 " is out of range, expected at most 2147483647"));
      }
      PutControlHeader(out, kTypeGoAway, 0, 8);
      PutU32(out, f.last_good_stream_id);
      PutU32(out, static_cast<uint32_t>(f.status));
      return absl::OkStatus();
    }
    absl::Status operator()(const SpdyWindowUpdate& f) const {
      if (f.stream_id > kSpdyMaxStreamId || f.delta == 0 || f.delta > kSpdyMaxWindow) {
        return absl::InvalidArgumentError(
            StrCat("WINDOW_UPDATE stream id ", f.stream_id, " or delta ", f.delta,
                   " is out of range, expected at most 2147483647 and 1 to 2147483647"));
      }
      PutControlHeader(out, kTypeWindowUpdate, 0, 8);
      PutU32(out, f.stream_id);
      PutU32(out, f.delta);
      return absl::OkStatus();
    }
    absl::Status operator()(const SpdyData& f) const {
      VMLET_RETURN_IF_ERROR(CheckStreamId(f.stream_id, "DATA"));
      if (f.data.size() > kMaxWireLength) {
        return absl::InvalidArgumentError(
            StrCat("DATA payload of ", f.data.size(), " bytes does not fit in a frame"));
      }
      PutU32(out, f.stream_id);
      PutU32(out, static_cast<uint32_t>(f.flags) << 24 | static_cast<uint32_t>(f.data.size()));
      out->append(f.data);
      return absl::OkStatus();
    }
    absl::Status operator()(const SpdyUnknownControl& f) const {
      return absl::InvalidArgumentError(
          StrCat("control frame type ", f.type, " cannot be encoded"));
    }
  };
  size_t size_before = out->size();
  absl::Status status = std::visit(Visitor{this, out}, frame);
  if (!status.ok()) out->resize(size_before);
  return status;
}

SpdyFrameDecoder::SpdyFrameDecoder() {
  int rc = inflateInit(&inflate_);
  if (rc != Z_OK) {
    status_ = absl::ResourceExhaustedError(
        StrCat("initializing SPDY header decompression: ", ZlibMessage(inflate_, rc)));
  }
}

SpdyFrameDecoder::~SpdyFrameDecoder() { inflateEnd(&inflate_); }

void SpdyFrameDecoder::Append(std::string_view bytes) {
  // Drop the decoded prefix once it is the larger part of the buffer, so
  // appending stays linear.
  if (offset_ > 0 && offset_ >= buffer_.size() / 2) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  buffer_.append(bytes);
}

absl::StatusOr<std::optional<SpdyFrame>> SpdyFrameDecoder::Next() {
  VMLET_RETURN_IF_ERROR(status_);
  std::string_view pending(buffer_.data() + offset_, buffer_.size() - offset_);
  if (pending.size() < kFrameHeaderLength) return std::nullopt;
  uint32_t first = GetU32(pending, 0);
  uint32_t second = GetU32(pending, 4);
  bool control = (first & 0x80000000u) != 0;
  uint8_t flags = static_cast<uint8_t>(second >> 24);
  size_t length = second & 0xffffff;
  if (control) {
    uint16_t version = static_cast<uint16_t>((first >> 16) & 0x7fff);
    if (version != kSpdyVersion) {
      status_ = absl::InvalidArgumentError(
          StrCat("control frame has SPDY version ", version, ", expected 3"));
      return status_;
    }
    if (length > kSpdyMaxControlFrameLength) {
      status_ = absl::ResourceExhaustedError(StrCat("control frame of type ", first & 0xffff,
                                                    " has length ", length, ", the limit is ",
                                                    kSpdyMaxControlFrameLength));
      return status_;
    }
  } else if (length > kSpdyMaxDataFrameLength) {
    status_ = absl::ResourceExhaustedError(
        StrCat("DATA frame has length ", length, ", the limit is ", kSpdyMaxDataFrameLength));
    return status_;
  }
  if (pending.size() < kFrameHeaderLength + length) return std::nullopt;
  std::string_view payload = pending.substr(kFrameHeaderLength, length);
  offset_ += kFrameHeaderLength + length;

  if (!control) {
    uint32_t stream_id = first & kSpdyMaxStreamId;
    if (stream_id == 0) {
      status_ = absl::InvalidArgumentError("DATA frame has stream id 0, expected 1 or more");
      return status_;
    }
    return SpdyData{.stream_id = stream_id, .flags = flags, .data = std::string(payload)};
  }
  absl::StatusOr<SpdyFrame> frame = DecodeControl(static_cast<uint16_t>(first), flags, payload);
  if (!frame.ok()) {
    status_ = frame.status();
    return status_;
  }
  return *std::move(frame);
}

absl::StatusOr<SpdyFrame> SpdyFrameDecoder::DecodeControl(uint16_t type, uint8_t flags,
                                                          std::string_view payload) {
  auto want_length = [&](std::string_view name, size_t want, bool at_least) -> absl::Status {
    if (at_least ? payload.size() >= want : payload.size() == want) return absl::OkStatus();
    return absl::InvalidArgumentError(StrCat(name, " frame has length ", payload.size(),
                                             at_least ? ", expected at least " : ", expected ",
                                             want));
  };
  auto stream_id_at = [&](std::string_view name, size_t at) -> absl::StatusOr<uint32_t> {
    uint32_t id = GetU32(payload, at) & kSpdyMaxStreamId;
    if (id == 0) {
      return absl::InvalidArgumentError(StrCat(name, " frame has stream id 0, expected 1 or more"));
    }
    return id;
  };
  switch (type) {
    case kTypeSynStream: {
      VMLET_RETURN_IF_ERROR(want_length("SYN_STREAM", 10, true));
      SpdySynStream f;
      VMLET_ASSIGN_OR_RETURN(f.stream_id, stream_id_at("SYN_STREAM", 0));
      f.associated_stream_id = GetU32(payload, 4) & kSpdyMaxStreamId;
      f.priority = static_cast<uint8_t>(static_cast<uint8_t>(payload[8]) >> 5);
      f.slot = static_cast<uint8_t>(payload[9]);
      f.flags = flags;
      VMLET_ASSIGN_OR_RETURN(f.headers, DecompressHeaders(payload.substr(10)));
      return f;
    }
    case kTypeSynReply:
    case kTypeHeaders: {
      std::string_view name = type == kTypeSynReply ? "SYN_REPLY" : "HEADERS";
      VMLET_RETURN_IF_ERROR(want_length(name, 4, true));
      VMLET_ASSIGN_OR_RETURN(uint32_t stream_id, stream_id_at(name, 0));
      VMLET_ASSIGN_OR_RETURN(Headers headers, DecompressHeaders(payload.substr(4)));
      if (type == kTypeSynReply) {
        return SpdySynReply{.stream_id = stream_id, .flags = flags, .headers = std::move(headers)};
      }
      return SpdyHeaders{.stream_id = stream_id, .flags = flags, .headers = std::move(headers)};
    }
    case kTypeRstStream: {
      VMLET_RETURN_IF_ERROR(want_length("RST_STREAM", 8, false));
      SpdyRstStream f;
      VMLET_ASSIGN_OR_RETURN(f.stream_id, stream_id_at("RST_STREAM", 0));
      f.status = static_cast<SpdyRstStatus>(GetU32(payload, 4));
      if (static_cast<uint32_t>(f.status) == 0) {
        return absl::InvalidArgumentError("RST_STREAM frame has status 0, expected 1 or more");
      }
      return f;
    }
    case kTypeSettings: {
      VMLET_RETURN_IF_ERROR(want_length("SETTINGS", 4, true));
      uint32_t count = GetU32(payload, 0);
      if (count != (payload.size() - 4) / 8 || (payload.size() - 4) % 8 != 0) {
        return absl::InvalidArgumentError(StrCat("SETTINGS frame claims ", count,
                                                 " entries but has length ", payload.size(),
                                                 ", expected 4 + 8 per entry"));
      }
      SpdySettings f;
      f.flags = flags;
      for (uint32_t i = 0; i < count; ++i) {
        uint32_t flags_and_id = GetU32(payload, 4 + 8 * i);
        f.settings.push_back({.flags = static_cast<uint8_t>(flags_and_id >> 24),
                              .id = flags_and_id & 0xffffff,
                              .value = GetU32(payload, 8 + 8 * i)});
      }
      return f;
    }
    case kTypePing:
      VMLET_RETURN_IF_ERROR(want_length("PING", 4, false));
      return SpdyPing{.id = GetU32(payload, 0)};
    case kTypeGoAway:
      VMLET_RETURN_IF_ERROR(want_length("GOAWAY", 8, false));
      return SpdyGoAway{.last_good_stream_id = GetU32(payload, 0) & kSpdyMaxStreamId,
                        .status = static_cast<SpdyGoAwayStatus>(GetU32(payload, 4))};
    case kTypeWindowUpdate: {
      VMLET_RETURN_IF_ERROR(want_length("WINDOW_UPDATE", 8, false));
      SpdyWindowUpdate f{.stream_id = GetU32(payload, 0) & kSpdyMaxStreamId,
                         .delta = GetU32(payload, 4) & kSpdyMaxWindow};
      if (f.delta == 0) {
        return absl::InvalidArgumentError(
            "WINDOW_UPDATE frame has delta 0, expected 1 to 2147483647");
      }
      return f;
    }
    default:
      return SpdyUnknownControl{.type = type, .flags = flags};
  }
}

absl::StatusOr<Headers> SpdyFrameDecoder::DecompressHeaders(std::string_view compressed) {
  inflate_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  inflate_.avail_in = static_cast<uInt>(compressed.size());
  // One byte over the limit tells a block that is too large.
  std::string block(std::min(kZlibChunk, kSpdyMaxHeaderBlockSize + 1), '\0');
  size_t produced = 0;
  while (true) {
    if (produced == block.size()) {
      if (block.size() > kSpdyMaxHeaderBlockSize) {
        return absl::ResourceExhaustedError(StrCat("header block decompresses to more than ",
                                                   kSpdyMaxHeaderBlockSize, " bytes, the limit"));
      }
      block.resize(std::min(block.size() * 2, kSpdyMaxHeaderBlockSize + 1));
    }
    inflate_.next_out = reinterpret_cast<Bytef*>(block.data() + produced);
    inflate_.avail_out = static_cast<uInt>(block.size() - produced);
    int rc = inflate(&inflate_, Z_SYNC_FLUSH);
    produced = block.size() - inflate_.avail_out;
    if (rc == Z_NEED_DICT) {
      std::string_view dictionary = SpdyHeaderDictionary();
      if (inflateSetDictionary(&inflate_, reinterpret_cast<const Bytef*>(dictionary.data()),
                               static_cast<uInt>(dictionary.size())) != Z_OK) {
        return absl::InvalidArgumentError(
            "header block asks for a compression dictionary other than SPDY/3's");
      }
      continue;
    }
    if (rc == Z_STREAM_END) {
      return absl::InvalidArgumentError(
          "header compression stream ended, expected it to last for the whole connection");
    }
    if (rc == Z_BUF_ERROR && inflate_.avail_out > 0) {
      // No progress possible: every input byte has been used.
      break;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return absl::InvalidArgumentError(
          StrCat("header block is not valid zlib data: ", ZlibMessage(inflate_, rc)));
    }
    if (inflate_.avail_in == 0 && inflate_.avail_out > 0) break;
  }
  if (produced > kSpdyMaxHeaderBlockSize) {
    return absl::ResourceExhaustedError(StrCat("header block decompresses to more than ",
                                               kSpdyMaxHeaderBlockSize, " bytes, the limit"));
  }
  block.resize(produced);
  return ParseSpdyHeaderBlock(block);
}

}  // namespace vmlet::streaming
