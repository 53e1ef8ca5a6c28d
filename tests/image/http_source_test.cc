// Name translation rules and DownloadUrl against TestHttpServer.
#include "image/http_source.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/str_util.h"
#include "tests/image/test_http_server.h"

namespace vmlet::image {
namespace {

using ::testing::HasSubstr;
using ::vmlet::testing::TestHttpServer;
using Request = TestHttpServer::Request;
using Responder = TestHttpServer::Responder;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

// --- Translator ---------------------------------------------------------

TEST(TranslatorTest, TranslatesAnExactName) {
  absl::StatusOr<Translator> translator =
      Translator::Create({{.name = "cirros",
                           .url = "https://images.example/cirros.img",
                           .tls = {.ca_file = "/etc/ca.pem"}}});
  ASSERT_TRUE(translator.ok()) << translator.status();
  std::optional<Translator::Match> match = translator->Translate("cirros");
  ASSERT_TRUE(match.has_value());
  EXPECT_EQ(match->url, "https://images.example/cirros.img");
  EXPECT_EQ(match->tls.ca_file, "/etc/ca.pem");
  EXPECT_FALSE(translator->Translate("cirros2").has_value());
  EXPECT_FALSE(translator->Translate("debian").has_value());
}

TEST(TranslatorTest, ARegexMustMatchTheWholeNameAndFillsInItsGroups) {
  absl::StatusOr<Translator> translator = Translator::Create({
      {.name = "special", .url = "http://a.example/special.raw"},
      {.regex = R"(vm/([a-z]+):([0-9.]+))", .url = "https://b.example/$1/$2/disk.qcow2?x=$$1"},
      {.regex = ".*", .url = "https://fallback.example/all"},
  });
  ASSERT_TRUE(translator.ok()) << translator.status();
  std::optional<Translator::Match> match = translator->Translate("vm/ubuntu:22.04");
  ASSERT_TRUE(match.has_value());
  EXPECT_EQ(match->url, "https://b.example/ubuntu/22.04/disk.qcow2?x=$1");
  // "vm/ubuntu:22.04-rc" does not match the second rule as a whole.
  match = translator->Translate("vm/ubuntu:22.04-rc");
  ASSERT_TRUE(match.has_value());
  EXPECT_EQ(match->url, "https://fallback.example/all");
  match = translator->Translate("special");  // The first matching rule wins.
  ASSERT_TRUE(match.has_value());
  EXPECT_EQ(match->url, "http://a.example/special.raw");
}

TEST(TranslatorTest, BadRulesAreInvalidArgumentNamingTheRule) {
  struct Case {
    TranslationRule rule;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{.regex = "vm/(unclosed", .url = "https://x.example/"}, "regex"},
      {{.name = "a", .regex = "a", .url = "https://x.example/"}, "exactly one of"},
      {{.url = "https://x.example/"}, "exactly one of"},
      {{.name = "a", .url = "ftp://x.example/a"}, "not an http:// or https:// URL"},
      {{.name = "a", .url = ""}, "url"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Translator> translator =
        Translator::Create({{.name = "ok", .url = "https://ok.example/"}, c.rule});
    EXPECT_EQ(translator.status().code(), absl::StatusCode::kInvalidArgument) << c.expected;
    EXPECT_THAT(Message(translator.status()), HasSubstr("translation rule 1"));
    EXPECT_THAT(Message(translator.status()), HasSubstr(c.expected));
  }
}

// --- DownloadUrl ------------------------------------------------------------

std::string Pattern(size_t size) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>('a' + (i * 7 + i / 13) % 26);
  return out;
}

class DownloadUrlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = TestHttpServer::Start([this](const Request& request, Responder& responder) {
      if (hook_ && hook_(request, responder)) return;
      if (request.path != "/disk.qcow2") return responder.Send(404, "no such file");
      std::string range = request.Header("range");
      if (range.starts_with("bytes=")) {
        size_t start = std::stoul(range.substr(6));
        return responder.Send(206, std::string_view(content_).substr(start),
                              {{"Content-Range", StrCat("bytes ", start, "-", content_.size() - 1,
                                                        "/", content_.size())}});
      }
      responder.Send(200, content_);
    });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value();
  }

  absl::Status Download(const std::string& path, std::string* received,
                        std::vector<std::pair<int64_t, int64_t>>* progress = nullptr) {
    return DownloadUrl(
        server_->url() + path, {},
        [received](std::string_view chunk) {
          received->append(chunk);
          return absl::OkStatus();
        },
        [progress](int64_t done, int64_t total) {
          if (progress) progress->emplace_back(done, total);
        },
        3, absl::Milliseconds(1));
  }

  const std::string content_ = Pattern(300000);
  std::function<bool(const Request&, Responder&)> hook_;  // Set before downloading.
  std::unique_ptr<TestHttpServer> server_;
};

TEST_F(DownloadUrlTest, DownloadsTheBodyAndReportsProgress) {
  std::string received;
  std::vector<std::pair<int64_t, int64_t>> progress;
  absl::Status status = Download("/disk.qcow2", &received, &progress);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(received, content_);
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back(), std::make_pair(int64_t(content_.size()), int64_t(content_.size())));
}

TEST_F(DownloadUrlTest, ResumesWithARangeAfterADroppedConnection) {
  std::atomic<int> calls{0};
  hook_ = [&](const Request& request, Responder& responder) {
    if (calls++ > 0) return false;
    EXPECT_FALSE(request.HasHeader("range"));
    responder.Start(200, static_cast<int64_t>(content_.size()));
    responder.Write(std::string_view(content_).substr(0, 123456));
    responder.Drop();
    return true;
  };
  std::string received;
  absl::Status status = Download("/disk.qcow2", &received);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(received, content_);
  std::vector<Request> requests = server_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].Header("range"), "bytes=123456-");
}

TEST_F(DownloadUrlTest, NotFoundIsNotFound) {
  std::string received;
  absl::Status status = Download("/missing.qcow2", &received);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(Message(status), HasSubstr(server_->url() + "/missing.qcow2"));
  EXPECT_EQ(server_->requests().size(), 1u);  // Not retried.
}

TEST_F(DownloadUrlTest, AnotherClientErrorIsFailedPreconditionNamingUrlAndStatus) {
  hook_ = [](const Request&, Responder& responder) {
    responder.Send(403, "go away");
    return true;
  };
  std::string received;
  absl::Status status = Download("/disk.qcow2", &received);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(Message(status), HasSubstr(server_->url() + "/disk.qcow2"));
  EXPECT_THAT(Message(status), HasSubstr("403"));
}

TEST_F(DownloadUrlTest, ServerErrorsAreRetriedThenUnavailable) {
  hook_ = [](const Request&, Responder& responder) {
    responder.Send(503, "busy");
    return true;
  };
  std::string received;
  absl::Status status = Download("/disk.qcow2", &received);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(server_->requests().size(), 3u);
}

TEST_F(DownloadUrlTest, ABodyWithoutLengthEndsWithTheConnection) {
  hook_ = [&](const Request&, Responder& responder) {
    responder.Start(200, -1);
    for (size_t i = 0; i < content_.size(); i += 65536) {
      responder.Write(std::string_view(content_).substr(i, 65536));
    }
    return true;
  };
  std::string received;
  absl::Status status = Download("/disk.qcow2", &received);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(received, content_);
}

}  // namespace
}  // namespace vmlet::image
