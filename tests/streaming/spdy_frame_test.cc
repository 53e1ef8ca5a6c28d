#include "streaming/spdy_frame.h"

#include <zlib.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace vmlet::streaming {
namespace {

using ::testing::HasSubstr;

std::string FromHex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::string ToHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

// zlib with a preset dictionary and a sync flush, as a SPDY peer compresses
// one header block; independent of SpdyFrameEncoder.
std::string Deflate(std::string_view data, std::string_view dictionary) {
  z_stream z{};
  EXPECT_EQ(deflateInit(&z, Z_DEFAULT_COMPRESSION), Z_OK);
  EXPECT_EQ(deflateSetDictionary(&z, reinterpret_cast<const Bytef*>(dictionary.data()),
                                 static_cast<uInt>(dictionary.size())),
            Z_OK);
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_SYNC_FLUSH), Z_OK);
  out.resize(out.size() - z.avail_out);
  deflateEnd(&z);
  return out;
}

// Decompresses one header block with a fresh zlib context and the SPDY/3
// dictionary; independent of SpdyFrameDecoder.
std::string Inflate(std::string_view data) {
  z_stream z{};
  EXPECT_EQ(inflateInit(&z), Z_OK);
  std::string out(1 << 16, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = inflate(&z, Z_SYNC_FLUSH);
  if (rc == Z_NEED_DICT) {
    std::string_view dictionary = SpdyHeaderDictionary();
    EXPECT_EQ(inflateSetDictionary(&z, reinterpret_cast<const Bytef*>(dictionary.data()),
                                   static_cast<uInt>(dictionary.size())),
              Z_OK);
    rc = inflate(&z, Z_SYNC_FLUSH);
  }
  EXPECT_EQ(rc, Z_OK);
  EXPECT_EQ(z.avail_in, 0u);
  out.resize(out.size() - z.avail_out);
  inflateEnd(&z);
  return out;
}

std::string U32(uint32_t value) {
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
  return out;
}

std::string Encode(SpdyFrameEncoder& encoder, const SpdyFrame& frame) {
  std::string out;
  absl::Status status = encoder.Encode(frame, &out);
  EXPECT_TRUE(status.ok()) << status;
  return out;
}

// Decodes every frame of `bytes`; fails the test on an error or leftovers.
std::vector<SpdyFrame> DecodeAll(SpdyFrameDecoder& decoder, std::string_view bytes) {
  decoder.Append(bytes);
  std::vector<SpdyFrame> frames;
  while (true) {
    absl::StatusOr<std::optional<SpdyFrame>> next = decoder.Next();
    EXPECT_TRUE(next.ok()) << next.status();
    if (!next.ok() || !next->has_value()) break;
    frames.push_back(**next);
  }
  EXPECT_EQ(decoder.buffered_bytes(), 0u);
  return frames;
}

// The first error decoding `bytes` from a fresh decoder.
absl::Status DecodeError(std::string_view bytes) {
  SpdyFrameDecoder decoder;
  decoder.Append(bytes);
  while (true) {
    absl::StatusOr<std::optional<SpdyFrame>> next = decoder.Next();
    if (!next.ok()) return next.status();
    if (!next->has_value()) return absl::OkStatus();
  }
}

std::string ControlHeader(uint16_t type, uint8_t flags, uint32_t length) {
  return FromHex("8003") + std::string{static_cast<char>(type >> 8), static_cast<char>(type)} +
         U32(static_cast<uint32_t>(flags) << 24 | length);
}

// A SYN_STREAM for stream 1 around an already compressed header block.
std::string SynStreamWithBlock(std::string_view compressed) {
  return ControlHeader(1, 0, 10 + compressed.size()) + U32(1) + U32(0) + std::string(2, '\0') +
         std::string(compressed);
}

TEST(SpdyFrameTest, DictionaryIsTheOneTheSpecDefines) {
  std::string_view dictionary = SpdyHeaderDictionary();
  EXPECT_EQ(dictionary.size(), 1423u);
  // The DICTID that opens every SPDY/3 header stream (spdystream's too, see
  // the golden frames below).
  EXPECT_EQ(adler32(1, reinterpret_cast<const Bytef*>(dictionary.data()),
                    static_cast<uInt>(dictionary.size())),
            0xe3c6a7c2u);
  EXPECT_EQ(dictionary.substr(0, 11), std::string_view("\0\0\0\7options", 11));
  EXPECT_TRUE(dictionary.ends_with(",*,enq=0."));
}

TEST(SpdyFrameTest, EveryFrameTypeRoundTrips) {
  std::vector<SpdyFrame> frames = {
      SpdySynStream{.stream_id = 1,
                    .associated_stream_id = 0,
                    .priority = 3,
                    .slot = 0,
                    .flags = kSpdyFlagFin,
                    .headers = {{"streamtype", "error"}, {"port", "80"}}},
      SpdySynStream{.stream_id = 0x7fffffff,
                    .associated_stream_id = 5,
                    .priority = 7,
                    .slot = 9,
                    .flags = kSpdyFlagUnidirectional,
                    .headers = {}},
      SpdySynReply{.stream_id = 2, .flags = 0, .headers = {}},
      SpdySynReply{.stream_id = 4, .flags = kSpdyFlagFin, .headers = {{"status", "200"}}},
      SpdyRstStream{.stream_id = 3, .status = SpdyRstStatus::kRefusedStream},
      SpdyRstStream{.stream_id = 5, .status = static_cast<SpdyRstStatus>(99)},
      SpdySettings{.flags = kSpdyFlagClearSettings,
                   .settings = {{.flags = 1, .id = kSpdySettingsMaxConcurrentStreams, .value = 100},
                                {.flags = 0, .id = kSpdySettingsInitialWindowSize, .value = 1}}},
      SpdySettings{},
      SpdyPing{.id = 1},
      SpdyPing{.id = 0xffffffff},
      SpdyGoAway{.last_good_stream_id = 7, .status = SpdyGoAwayStatus::kProtocolError},
      SpdyGoAway{},
      SpdyHeaders{.stream_id = 9, .flags = kSpdyFlagFin, .headers = {{"a", "b"}}},
      SpdyWindowUpdate{.stream_id = 0, .delta = 1},
      SpdyWindowUpdate{.stream_id = 11, .delta = kSpdyMaxWindow},
      SpdyData{.stream_id = 13, .flags = 0, .data = "hello"},
      SpdyData{.stream_id = 13, .flags = kSpdyFlagFin, .data = ""},
      SpdyData{.stream_id = 15, .flags = 0, .data = std::string(kSpdyMaxDataFrameLength, 'x')},
  };
  SpdyFrameEncoder encoder;
  std::string bytes;
  for (const SpdyFrame& frame : frames) bytes += Encode(encoder, frame);
  SpdyFrameDecoder decoder;
  std::vector<SpdyFrame> decoded = DecodeAll(decoder, bytes);
  ASSERT_EQ(decoded.size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_TRUE(decoded[i] == frames[i]) << "frame " << i << ": " << SpdyFrameName(frames[i]);
  }
}

TEST(SpdyFrameTest, FramesFedOneByteAtATimeDecodeTheSame) {
  SpdyFrameEncoder encoder;
  std::vector<SpdyFrame> frames = {
      SpdySynStream{.stream_id = 1, .headers = {{"streamtype", "stdin"}}},
      SpdyData{.stream_id = 1, .data = "abc"},
      SpdyPing{.id = 2},
      SpdySynReply{.stream_id = 1, .headers = {{"x", "y"}}},
  };
  std::string bytes;
  for (const SpdyFrame& frame : frames) bytes += Encode(encoder, frame);
  SpdyFrameDecoder decoder;
  std::vector<SpdyFrame> decoded;
  for (char c : bytes) {
    decoder.Append(std::string_view(&c, 1));
    absl::StatusOr<std::optional<SpdyFrame>> next = decoder.Next();
    ASSERT_TRUE(next.ok()) << next.status();
    if (next->has_value()) decoded.push_back(**next);
  }
  EXPECT_EQ(decoded, frames);
  EXPECT_EQ(decoder.buffered_bytes(), 0u);
}

TEST(SpdyFrameTest, TruncatedFrameWaitsForTheRest) {
  SpdyFrameEncoder encoder;
  std::string bytes = Encode(encoder, SpdyData{.stream_id = 1, .data = "0123456789"});
  SpdyFrameDecoder decoder;
  decoder.Append(bytes.substr(0, 12));
  absl::StatusOr<std::optional<SpdyFrame>> next = decoder.Next();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value());
  EXPECT_EQ(decoder.buffered_bytes(), 12u);  // what a session reports at EOF
  decoder.Append(bytes.substr(12));
  next = decoder.Next();
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ(std::get<SpdyData>(**next).data, "0123456789");
}

TEST(SpdyFrameTest, HeaderBlocksShareOneCompressionContext) {
  Headers headers = {{"streamtype", "data"}, {"port", "8080"}, {"requestid", "0"}};
  SpdyFrameEncoder encoder;
  std::string first = Encode(encoder, SpdySynStream{.stream_id = 1, .headers = headers});
  std::string second = Encode(encoder, SpdySynStream{.stream_id = 3, .headers = headers});
  std::string third = Encode(encoder, SpdyHeaders{.stream_id = 3, .headers = headers});
  // The repeat is mostly back-references into the shared history.
  EXPECT_LT(second.size(), first.size());
  EXPECT_LT(third.size(), first.size());
  SpdyFrameDecoder decoder;
  std::vector<SpdyFrame> frames = DecodeAll(decoder, first + second + third);
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(std::get<SpdySynStream>(frames[1]).headers, headers);
  EXPECT_EQ(std::get<SpdyHeaders>(frames[2]).headers, headers);
  // Without the first block's context the second cannot be read.
  EXPECT_FALSE(DecodeError(second).ok());
}

// Frames written by moby/spdystream v0.2.0's framer (Debian's
// golang-github-docker-spdystream-dev, Go 1.19): SYN_STREAM 1 with
// Streamtype: error, SYN_STREAM 3 with Streamtype: stdin, SYN_REPLY 2 with
// no headers, in one compression context.
constexpr std::string_view kSpdystreamFrames[] = {
    "80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000"
    "ffff",
    "800300010000001700000003000000000000c22e555c92929907000000ffff",
    "800300020000000e000000026260606000000000ffff",
};

TEST(SpdyFrameTest, DecodesSpdystreamFrames) {
  std::string bytes;
  for (std::string_view hex : kSpdystreamFrames) bytes += FromHex(hex);
  SpdyFrameDecoder decoder;
  std::vector<SpdyFrame> frames = DecodeAll(decoder, bytes);
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0],
            SpdyFrame(SpdySynStream{.stream_id = 1, .headers = {{"streamtype", "error"}}}));
  EXPECT_EQ(frames[1],
            SpdyFrame(SpdySynStream{.stream_id = 3, .headers = {{"streamtype", "stdin"}}}));
  EXPECT_EQ(frames[2], SpdyFrame(SpdySynReply{.stream_id = 2}));
}

TEST(SpdyFrameTest, SynStreamBytesAreWhatTheSpecAndSpdystreamSay) {
  SpdyFrameEncoder encoder;
  std::string bytes =
      Encode(encoder, SpdySynStream{.stream_id = 1, .headers = {{"Streamtype", "error"}}});
  // Control bit and version 3, type 1, flags 0, then the length.
  EXPECT_EQ(ToHex(bytes.substr(0, 5)), "8003000100");
  EXPECT_EQ(bytes.size(),
            8 + ((static_cast<uint8_t>(bytes[5]) << 16) | (static_cast<uint8_t>(bytes[6]) << 8) |
                 static_cast<uint8_t>(bytes[7])));
  // Stream 1, associated 0, priority 0, slot 0.
  EXPECT_EQ(ToHex(bytes.substr(8, 10)), "00000001000000000000");
  std::string block = bytes.substr(18);
  // zlib header at best compression with a preset dictionary, whose DICTID
  // is the SPDY/3 dictionary's Adler-32; exactly spdystream's opening.
  EXPECT_EQ(ToHex(block.substr(0, 6)), "78f9e3c6a7c2");
  // Apart from the length (the deflate output of two implementations may
  // differ), the frame opens as spdystream's does.
  std::string spdystream = FromHex(kSpdystreamFrames[0]);
  EXPECT_EQ(ToHex(bytes.substr(0, 5)), ToHex(spdystream.substr(0, 5)));
  EXPECT_EQ(ToHex(bytes.substr(8, 16)), ToHex(spdystream.substr(8, 16)));
  // Each block ends with a sync flush.
  EXPECT_EQ(ToHex(block.substr(block.size() - 4)), "0000ffff");
  // The name/value block, lower-cased, as spdystream writes it.
  EXPECT_EQ(ToHex(Inflate(block)), ToHex(U32(1) + U32(10) + "streamtype" + U32(5) + "error"));
}

TEST(SpdyFrameTest, HeaderBlockJoinsRepeatedNamesAndSplitsThemBack) {
  absl::StatusOr<std::string> block =
      SerializeSpdyHeaderBlock({{"Accept", "a"}, {"x", "1"}, {"accept", "b"}});
  ASSERT_TRUE(block.ok());
  EXPECT_EQ(*block, U32(2) + U32(6) + "accept" + U32(3) + std::string("a\0b", 3) + U32(1) + "x" +
                        U32(1) + "1");
  absl::StatusOr<Headers> parsed = ParseSpdyHeaderBlock(*block);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, (Headers{{"accept", "a"}, {"accept", "b"}, {"x", "1"}}));
  // Names arrive lower-cased whatever the peer sent.
  parsed = ParseSpdyHeaderBlock(U32(1) + U32(4) + "PoRt" + U32(2) + "80");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, (Headers{{"port", "80"}}));
  EXPECT_FALSE(SerializeSpdyHeaderBlock({{"", "x"}}).ok());
}

TEST(SpdyFrameTest, EncoderRejectsWhatTheWireCannotCarry) {
  std::vector<SpdyFrame> bad = {
      SpdySynStream{.stream_id = 0},
      SpdySynStream{.stream_id = 0x80000000},
      SpdySynStream{.stream_id = 1, .priority = 8},
      SpdySynStream{.stream_id = 1, .headers = {{"", "empty name"}}},
      SpdySynStream{.stream_id = 1,
                    .headers = {{"big", std::string(kSpdyMaxHeaderBlockSize, 'x')}}},
      SpdySynReply{.stream_id = 0},
      SpdyRstStream{.stream_id = 1, .status = static_cast<SpdyRstStatus>(0)},
      SpdyPing{.id = 0},
      SpdyWindowUpdate{.stream_id = 1, .delta = 0},
      SpdyWindowUpdate{.stream_id = 1, .delta = 0x80000000},
      SpdyData{.stream_id = 0, .data = "x"},
      SpdySettings{.settings = {{.id = 0x1000000}}},
      SpdyUnknownControl{.type = 10},
  };
  SpdyFrameEncoder encoder;
  for (const SpdyFrame& frame : bad) {
    std::string out = "kept";
    EXPECT_FALSE(encoder.Encode(frame, &out).ok()) << SpdyFrameName(frame);
    EXPECT_EQ(out, "kept");
  }
  // The compression context is intact after the rejected header blocks.
  std::string bytes = Encode(encoder, SpdySynReply{.stream_id = 2, .headers = {{"a", "b"}}});
  SpdyFrameDecoder decoder;
  EXPECT_EQ(DecodeAll(decoder, bytes).size(), 1u);
}

TEST(SpdyFrameTest, UnknownControlFramesAreSkipped) {
  SpdyFrameEncoder encoder;
  std::string bytes = ControlHeader(10, 0, 6) + "abcdef" + Encode(encoder, SpdyPing{.id = 1});
  SpdyFrameDecoder decoder;
  std::vector<SpdyFrame> frames = DecodeAll(decoder, bytes);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0], SpdyFrame(SpdyUnknownControl{.type = 10}));
  EXPECT_EQ(frames[1], SpdyFrame(SpdyPing{.id = 1}));
}

struct MalformedCase {
  std::string name;
  std::string bytes;
  absl::StatusCode code;
  std::string message;
};

std::vector<MalformedCase> MalformedCases() {
  std::string dictionary(SpdyHeaderDictionary());
  std::string one_header = U32(1) + U32(1) + "a" + U32(1) + "b";
  return {
      {"SPDY/2 control frame", FromHex("8002000600000004") + U32(1),
       absl::StatusCode::kInvalidArgument, "version 2, expected 3"},
      {"control length past the limit (header alone)", ControlHeader(1, 0, 0xffffff),
       absl::StatusCode::kResourceExhausted, "the limit is"},
      {"DATA length past the limit (header alone)", U32(1) + U32(kSpdyMaxDataFrameLength + 1),
       absl::StatusCode::kResourceExhausted, "DATA frame has length"},
      {"DATA on stream 0", U32(0) + U32(1) + "x", absl::StatusCode::kInvalidArgument,
       "stream id 0"},
      {"RST_STREAM of length 4", ControlHeader(3, 0, 4) + U32(1),
       absl::StatusCode::kInvalidArgument, "RST_STREAM frame has length 4, expected 8"},
      {"RST_STREAM with status 0", ControlHeader(3, 0, 8) + U32(1) + U32(0),
       absl::StatusCode::kInvalidArgument, "status 0"},
      {"RST_STREAM on stream 0", ControlHeader(3, 0, 8) + U32(0) + U32(5),
       absl::StatusCode::kInvalidArgument, "stream id 0"},
      {"PING of length 8", ControlHeader(6, 0, 8) + U32(1) + U32(2),
       absl::StatusCode::kInvalidArgument, "PING frame has length 8"},
      {"SPDY/2 GOAWAY of length 4", ControlHeader(7, 0, 4) + U32(0),
       absl::StatusCode::kInvalidArgument, "GOAWAY frame has length 4"},
      {"WINDOW_UPDATE of length 4", ControlHeader(9, 0, 4) + U32(1),
       absl::StatusCode::kInvalidArgument, "WINDOW_UPDATE frame has length 4"},
      {"WINDOW_UPDATE with delta 0", ControlHeader(9, 0, 8) + U32(1) + U32(0),
       absl::StatusCode::kInvalidArgument, "delta 0"},
      {"SETTINGS count beyond its length", ControlHeader(4, 0, 12) + U32(2) + U32(7) + U32(1),
       absl::StatusCode::kInvalidArgument, "claims 2 entries"},
      {"SETTINGS shorter than its count", ControlHeader(4, 0, 2) + "xx",
       absl::StatusCode::kInvalidArgument, "expected at least 4"},
      {"SYN_STREAM shorter than its fixed part", ControlHeader(1, 0, 8) + U32(1) + U32(0),
       absl::StatusCode::kInvalidArgument, "expected at least 10"},
      {"SYN_REPLY shorter than its stream id", ControlHeader(2, 0, 2) + "xx",
       absl::StatusCode::kInvalidArgument, "expected at least 4"},
      {"SYN_STREAM on stream 0", ControlHeader(1, 0, 10) + U32(0) + U32(0) + std::string(2, '\0'),
       absl::StatusCode::kInvalidArgument, "stream id 0"},
      {"SYN_STREAM without a header block", SynStreamWithBlock(""),
       absl::StatusCode::kInvalidArgument, "truncated"},
      {"header block that is not zlib", SynStreamWithBlock("hello, not zlib at all"),
       absl::StatusCode::kInvalidArgument, "not valid zlib data"},
      {"garbage after a valid zlib header",
       SynStreamWithBlock(FromHex("78f9e3c6a7c2") + "\xff\xff\xff\xff garbage"),
       absl::StatusCode::kInvalidArgument, "not valid zlib data"},
      {"header block compressed with another dictionary",
       SynStreamWithBlock(Deflate(one_header, "some other dictionary")),
       absl::StatusCode::kInvalidArgument, "dictionary"},
      {"zlib bomb", SynStreamWithBlock(Deflate(std::string(4 << 20, '\0'), dictionary)),
       absl::StatusCode::kResourceExhausted, "the limit"},
      {"header count far beyond the block",
       SynStreamWithBlock(Deflate(U32(0xffffffff), dictionary)), absl::StatusCode::kInvalidArgument,
       "claims 4294967295 headers"},
      {"name length past the end",
       SynStreamWithBlock(Deflate(U32(1) + U32(100) + "abcd" + U32(0), dictionary)),
       absl::StatusCode::kInvalidArgument, "runs past the end"},
      {"empty header name", SynStreamWithBlock(Deflate(U32(1) + U32(0) + U32(1) + "v", dictionary)),
       absl::StatusCode::kInvalidArgument, "empty name"},
      {"bytes after the last header", SynStreamWithBlock(Deflate(one_header + "junk", dictionary)),
       absl::StatusCode::kInvalidArgument, "after its last header"},
  };
}

TEST(SpdyFrameTest, MalformedInputIsAnError) {
  for (const MalformedCase& c : MalformedCases()) {
    absl::Status status = DecodeError(c.bytes);
    EXPECT_EQ(status.code(), c.code) << c.name << ": " << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.message)) << c.name;
  }
}

TEST(SpdyFrameTest, ErrorsAreSticky) {
  SpdyFrameDecoder decoder;
  decoder.Append(FromHex("8002000600000004") + U32(1));
  EXPECT_FALSE(decoder.Next().ok());
  SpdyFrameEncoder encoder;
  decoder.Append(Encode(encoder, SpdyPing{.id = 1}));
  EXPECT_FALSE(decoder.Next().ok());
}

TEST(SpdyFrameTest, RandomBytesEndInErrorsNotCrashes) {
  std::mt19937 random(20240607);
  SpdyFrameEncoder encoder;
  std::string valid = Encode(encoder, SpdySynStream{.stream_id = 1, .headers = {{"a", "b"}}}) +
                      Encode(encoder, SpdyData{.stream_id = 1, .data = "payload"}) +
                      Encode(encoder, SpdySettings{.settings = {{.id = 7, .value = 9}}});
  for (int round = 0; round < 3000; ++round) {
    std::string bytes;
    if (round % 2 == 0) {
      // Valid frames with some bytes flipped.
      bytes = valid;
      int flips = 1 + static_cast<int>(random() % 4);
      for (int i = 0; i < flips; ++i) bytes[random() % bytes.size()] = static_cast<char>(random());
    } else {
      // A plausible control header in front of noise.
      bytes = ControlHeader(static_cast<uint16_t>(random() % 12), static_cast<uint8_t>(random()),
                            random() % 64);
      size_t size = random() % 80;
      for (size_t i = 0; i < size; ++i) bytes.push_back(static_cast<char>(random()));
    }
    SpdyFrameDecoder decoder;
    size_t at = 0;
    while (at < bytes.size()) {
      size_t piece = std::min<size_t>(1 + random() % 16, bytes.size() - at);
      decoder.Append(std::string_view(bytes).substr(at, piece));
      at += piece;
      absl::StatusOr<std::optional<SpdyFrame>> next;
      do {
        next = decoder.Next();
      } while (next.ok() && next->has_value());
      if (!next.ok()) break;
    }
  }
}

}  // namespace
}  // namespace vmlet::streaming
