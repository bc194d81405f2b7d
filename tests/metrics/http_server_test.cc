// The metrics listener's HTTP server over real sockets: exact routes only (404 for the rest),
// GET and HEAD only (405 with Allow for the rest), the query parsed, gzip marked, and no answer
// over kMaxBody.
#include "metrics/http_server.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include "tests/support/http.h"

namespace ringlb::metrics {
namespace {

using testing::http_request;

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    Status error;
    server_ = HttpServer::start("127.0.0.1:0", reinterpret_cast<sockaddr*>(&addr), sizeof(addr), &error);
    ASSERT_TRUE(server_) << error.message();
    port_ = static_cast<uint16_t>(server_->port());
    server_->route("/echo", [](const HttpRequest& r) {
      HttpResponse out;
      out.body = r.path + "?" + (r.param("a") ? *r.param("a") : "-") + "," + (r.param("b") ? *r.param("b") : "-");
      return out;
    });
    server_->route("/huge", [](const HttpRequest&) {
      HttpResponse out;
      out.body.assign(HttpServer::kMaxBody + 1, 'x');
      return out;
    });
    server_->route("/zipped", [](const HttpRequest&) {
      HttpResponse out;
      out.body = gzip("hello");
      out.gzipped = true;
      return out;
    });
  }
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
};

TEST_F(HttpServerTest, RoutesAreExact) {
  EXPECT_EQ(http_request(port_, "GET", "/echo?a=1&b").body, "/echo?1,");
  EXPECT_EQ(http_request(port_, "GET", "/echo").body, "/echo?-,-");
  for (const char* path : {"/", "/echox", "/echo/", "/echo/x", "/ech"}) {
    const testing::HttpReply r = http_request(port_, "GET", path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(r.body.rfind("not found", 0), 0u) << path;
  }
}

TEST_F(HttpServerTest, OnlyGetAndHead) {
  for (const char* method : {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    testing::HttpReply r = http_request(port_, method, "/echo");
    EXPECT_EQ(r.status, 405) << method;
    EXPECT_EQ(r.headers["allow"], "GET, HEAD") << method;
  }
  testing::HttpReply head = http_request(port_, "HEAD", "/echo");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(head.headers["content-length"], "9");  // what GET's body would be: "/echo?-,-"
}

TEST_F(HttpServerTest, AnswersAreBounded) {
  const testing::HttpReply r = http_request(port_, "GET", "/huge");
  EXPECT_EQ(r.status, 500);
  EXPECT_LT(r.body.size(), 100u);
}

TEST_F(HttpServerTest, GzipIsMarked) {
  testing::HttpReply r = http_request(port_, "GET", "/zipped");
  EXPECT_EQ(r.headers["content-encoding"], "gzip");
  EXPECT_EQ(r.body, gzip("hello"));
  EXPECT_EQ(r.body.compare(0, 2, "\x1f\x8b"), 0);  // gzip's magic
}

}  // namespace
}  // namespace ringlb::metrics
