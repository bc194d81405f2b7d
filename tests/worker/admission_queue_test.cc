// The maxconn queue's order and its handling of clients that left, without a ring.
#include "server/worker/admission_queue.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace ringlb::worker {
namespace {

struct Fixture {
  AdmissionQueue queue;
  std::map<uint32_t, uint64_t> tickets;  // live entries
  std::vector<uint32_t> went;
  void push(uint32_t id, uint32_t accept_us) { tickets[id] = queue.push(id, accept_us); }
  void leave(uint32_t id) {
    tickets.erase(id);
    queue.left();
  }
  void dispatch(uint32_t room) {
    queue.dispatch([&](uint32_t id, uint64_t t) { return tickets.count(id) && tickets[id] == t; },
                   [&](uint32_t) { return room > 0; },
                   [&](uint32_t id) {
                     --room;
                     tickets.erase(id);
                     went.push_back(id);
                   });
  }
};

TEST(AdmissionQueue, GoesInAcceptOrderNotArrivalOrder) {
  Fixture f;
  f.push(1, 300);
  f.push(2, 100);
  f.push(3, 200);
  f.push(4, 200);  // ties keep their arrival order
  f.dispatch(10);
  EXPECT_EQ(f.went, (std::vector<uint32_t>{2, 3, 4, 1}));
  EXPECT_EQ(f.queue.size(), 0u);
}

TEST(AdmissionQueue, AcceptStampsThatWrapStillOrder) {
  Fixture f;
  f.push(1, 5);            // accepted just after the 32-bit clock wrapped
  f.push(2, 0xFFFFFFF0u);  // accepted just before
  f.dispatch(10);
  EXPECT_EQ(f.went, (std::vector<uint32_t>{2, 1}));
}

TEST(AdmissionQueue, TheHeadThatCannotGoHoldsEveryoneBehindIt) {
  Fixture f;
  f.push(1, 1);
  f.push(2, 2);
  f.push(3, 3);
  f.dispatch(2);
  EXPECT_EQ(f.went, (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(f.queue.size(), 1u);
  f.dispatch(0);
  EXPECT_EQ(f.went.size(), 2u);
  f.dispatch(1);
  EXPECT_EQ(f.went, (std::vector<uint32_t>{1, 2, 3}));
}

TEST(AdmissionQueue, ClientsThatLeftAreSkippedAndTheirSlotsCanQueueAgain) {
  Fixture f;
  f.push(1, 1);
  f.push(2, 2);
  f.leave(1);
  f.push(1, 3);  // the same slot now holds a later client: the old entry is stale
  EXPECT_EQ(f.queue.size(), 2u);
  f.dispatch(10);
  EXPECT_EQ(f.went, (std::vector<uint32_t>{2, 1}));
}

TEST(AdmissionQueue, StaleEntriesGoWhenTheLastLiveOneLeaves) {
  Fixture f;
  for (uint32_t i = 0; i < 100; ++i) f.push(i, i);
  for (uint32_t i = 0; i < 100; ++i) f.leave(i);
  EXPECT_EQ(f.queue.size(), 0u);
  EXPECT_EQ(f.queue.entries(), 0u);
}

}  // namespace
}  // namespace ringlb::worker
