// The new process's side of an upgrade (--takeover PATH; control/protocol.h has the protocol).
// The running ringlb's runtime state and listening sockets come over first. Only once this
// process can serve (listeners registered, workers running, etcd read and the DNS names'
// first answers in) does it say "ready": the old process then stops accepting, and this one
// accepts as soon as the old one's accepts are over.
#pragma once

#include <string>
#include <vector>

#include "server/base/unique_fd.h"
#include "server/control/protocol.h"

namespace ringlb {
namespace discovery {
class ClusterPublisher;
}

namespace process {

class Takeover {
 public:
  // Nothing to take over when `path` is empty. Otherwise asks the ringlb at `path` for its
  // runtime state (drains, maintenance, runtime weights: restored into `publisher`), then for
  // its listeners. Either failing is a warning: the state starts afresh, or the listeners are
  // bound here (a busy address then fails start-up).
  Takeover(const std::string& path, discovery::ClusterPublisher& publisher);
  // A takeover never handed over (start-up failed): the connection closes and the old process
  // keeps serving.
  ~Takeover();
  Takeover(const Takeover&) = delete;
  Takeover& operator=(const Takeover&) = delete;

  // The listening sockets received (empty without a takeover).
  const std::vector<InheritedListener>& listeners() const { return inherited_; }
  // Closes the received sockets' descriptors: registered in the acceptor by now, or unused.
  void release_listeners();
  // This process can serve: tells the old one to stop accepting and waits until its accepts are
  // over (for at most 2 s: it may only be slow). A no-op without a takeover.
  void hand_over();

 private:
  std::string path_;
  std::vector<InheritedListener> inherited_;
  UniqueFd conn_;  // the listeners' connection, open until the hand-over
};

}  // namespace process
}  // namespace ringlb
