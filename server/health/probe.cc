#include "server/health/probe.h"

#include <cerrno>
#include <cstring>

namespace ringlb::health {

void Probe::start(const CheckSpec* spec, std::string preamble, const std::string& host, const TlsContext* tls) {
  spec_ = spec;
  tls_ctx_ = tls;
  tls_.reset();
  host_ = host;
  out_ = std::move(preamble);
  out_sent_ = 0;
  reply_.clear();
  result_ = Result::k_ok;
  reason_.clear();
  resumed_ = false;
  phase_ = Phase::kPreamble;
}

const char* Probe::waiting_for() const {
  switch (phase_) {
    case Phase::kPreamble: return "PROXY header";
    case Phase::kHandshake: return "TLS handshake";
    case Phase::kTicket: return "TLS session ticket";
    case Phase::kRequest:
    case Phase::kReply: return "reply";
    case Phase::kDone: break;
  }
  return "check";
}

void Probe::finish(Result r, std::string reason) {
  phase_ = Phase::kDone;
  result_ = r;
  reason_ = std::move(reason);
  if (r != Result::k_ok) session_.reset(nullptr);  // after a failure, a full handshake
  tls_.reset();  // the SSL object's memory goes back now, not at the next check
}

Probe::Step Probe::next() {
  for (;;) {
    if (phase_ == Phase::kDone) return {};
    if (out_sent_ < out_.size()) return {Step::kSend, out_.data() + out_sent_, nullptr, out_.size() - out_sent_};
    out_.clear();
    out_sent_ = 0;
    switch (phase_) {
      case Phase::kPreamble:
        if (!uses_tls(spec_->type)) {
          phase_ = Phase::kRequest;
          break;
        }
        tls_ = tls_ctx_ != nullptr ? std::make_unique<TlsClient>(*tls_ctx_, spec_->sni, &session_) : nullptr;
        if (!tls_ || !tls_->ok()) {
          finish(Result::k_tls_error, "TLS: " + (tls_ ? tls_->error() : std::string("no TLS context")));
          break;
        }
        phase_ = Phase::kHandshake;
        break;
      case Phase::kHandshake: {
        const TlsClient::Status s = tls_->handshake();
        tls_->take_output(&out_);
        if (s == TlsClient::kError) {
          finish(Result::k_tls_error, "TLS " + tls_->error());
          break;
        }
        if (s == TlsClient::kDone) {
          resumed_ = tls_->resumed();
          // tls: passed. A TLS 1.3 server sends its ticket only after our Finished, so wait a
          // little for it (TLS 1.2 gave its session in the handshake, or resumed one it keeps).
          bool wait_ticket = spec_->type == CheckType::kTls && tls_->tls13() && !tls_->got_session();
          if (wait_ticket && skip_ticket_waits_ > 0) {
            --skip_ticket_waits_;
            wait_ticket = false;
          }
          phase_ = wait_ticket ? Phase::kTicket : Phase::kRequest;
          break;
        }
        if (out_.empty()) return {Step::kRecv, nullptr, in_.data(), in_.size()};
        break;  // send the handshake's bytes first
      }
      case Phase::kRequest: {
        std::string request;
        if (uses_http(spec_->type)) {
          request = spec_->http_request(host_);
        } else if (spec_->type == CheckType::kSendExpect || uses_datagrams(spec_->type)) {
          request = spec_->send;
        } else {
          finish(Result::k_ok, {});  // tcp: connected; tls: the handshake completed
          break;
        }
        phase_ = Phase::kReply;
        if (tls_) {
          if (!tls_->write(request)) {
            finish(Result::k_tls_error, "TLS " + tls_->error());
            break;
          }
          tls_->take_output(&out_);
        } else {
          out_ = std::move(request);
        }
        break;
      }
      case Phase::kTicket: {
        Step step{Step::kRecv, nullptr, in_.data(), in_.size()};
        step.optional = true;
        return step;
      }
      case Phase::kReply:
        return {Step::kRecv, nullptr, in_.data(), in_.size()};
      case Phase::kDone:
        break;
    }
  }
}

void Probe::on_error(int res, const char* op) {
  if (res == -ECANCELED) return finish(Result::k_timeout, std::string("no ") + waiting_for());
  const std::string what = std::string(op) + ": " + strerror(-res);
  // A connected UDP socket learns of an ICMP port unreachable as ECONNREFUSED on its next call.
  if (uses_datagrams(spec_->type) && res == -ECONNREFUSED) {
    return finish(Result::k_refused, "ICMP port unreachable (" + what + ")");
  }
  if (phase_ == Phase::kHandshake) return finish(Result::k_tls_error, "TLS handshake: " + what);
  finish(Result::k_bad_response, what);
}

void Probe::on_sent(int res) {
  if (phase_ == Phase::kDone) return;
  if (res < 0) return on_error(res, "send");
  out_sent_ += static_cast<size_t>(res);
}

void Probe::on_received(int res) {
  if (phase_ == Phase::kDone) return;
  if (phase_ == Phase::kTicket) {
    // Whatever comes (the ticket, nothing before the short wait ends, a close), the check has
    // passed; without a ticket, the next kTicketRetryEvery - 1 checks do not wait for one.
    if (res > 0) {
      tls_->feed(in_.data(), static_cast<size_t>(res));
      char plain[256];
      while (tls_->read(plain, sizeof(plain)) > 0) {
      }
      if (!tls_->got_session() && tls_->pending_input()) return;  // a ticket in pieces: recv again
    }
    if (!tls_->got_session()) skip_ticket_waits_ = kTicketRetryEvery - 1;
    return finish(Result::k_ok, {});
  }
  if (res < 0) return on_error(res, "recv");
  if (uses_datagrams(spec_->type)) {
    // One datagram is the whole reply (0 bytes is an empty datagram, not an end of stream).
    reply_.assign(in_.data(), std::min(static_cast<size_t>(res), kMaxReplyWindow));
    const Judgement j = judge_datagram(reply_, spec_->expect, spec_->window());
    return j.verdict == Verdict::kOk ? finish(Result::k_ok, {}) : finish(Result::k_bad_response, j.reason);
  }
  if (phase_ == Phase::kHandshake) {
    if (res == 0) return finish(Result::k_tls_error, "TLS handshake: the backend closed the connection");
    tls_->feed(in_.data(), static_cast<size_t>(res));
    return;  // next() carries the handshake on
  }
  bool eof = res == 0;
  if (tls_ && res > 0) {
    tls_->feed(in_.data(), static_cast<size_t>(res));
    char plain[4096];
    for (;;) {
      const int n = tls_->read(plain, sizeof(plain));
      if (n > 0) {
        reply_.append(plain, std::min(static_cast<size_t>(n), kMaxReplyWindow - reply_.size()));
        continue;
      }
      if (n == TlsClient::kClosed) eof = true;
      if (n == TlsClient::kError) return finish(Result::k_tls_error, "TLS " + tls_->error());
      break;
    }
  } else if (res > 0) {
    reply_.append(in_.data(), std::min(static_cast<size_t>(res), kMaxReplyWindow - reply_.size()));
  }
  judge(eof || reply_.size() >= kMaxReplyWindow);
}

void Probe::judge(bool done) {
  const Judgement j = uses_http(spec_->type) ? judge_http(reply_, done, *spec_)
                                             : judge_expect(reply_, done, spec_->expect, spec_->window());
  switch (j.verdict) {
    case Verdict::kMore:
      return;
    case Verdict::kOk:
      return finish(Result::k_ok, {});
    case Verdict::kBadStatus:
      return finish(Result::k_bad_status, j.reason);
    case Verdict::kBadResponse:
      return finish(Result::k_bad_response, j.reason);
  }
}

}  // namespace ringlb::health
