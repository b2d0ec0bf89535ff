#pragma once
// SequenceChecker: verifies, for one receiver, that every publisher's messages arrive exactly
// once and in order (sequence numbers 0, 1, 2, ... per publisher). It classifies each problem:
//   gap        a sequence number was skipped (counted as missing until it shows up late)
//   reordered  a skipped number arrived later (it was out of order, not lost)
//   duplicate  a number arrived that was already seen
//   unknown    a publisher index outside [0, publishers)
//   missing    after finish(): numbers never received (inside gaps or at the tail)
// Why not a bitmap of every sequence: the expected case is strictly in order, so one counter per
// publisher suffices; only gaps (rare, and a failure anyway) are remembered as ranges.
//
// Thread-safety: none; one checker per receiver, read after the run.
// Ownership: a value type. record() allocates only when it meets a problem.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace edgehub::bench {

class SequenceChecker {
 public:
  explicit SequenceChecker(uint32_t publishers = 0, std::string name = "");

  void record(uint32_t publisher, uint64_t sequence);
  // Closes the check: expected[i] is how many messages publisher i sent. Counts every number
  // in [0, expected[i]) not received as missing, and every number >= expected[i] as unknown.
  void finish(std::span<const uint64_t> expected);

  bool ok() const { return duplicates_ == 0 && reordered_ == 0 && unknown_ == 0 && missing_ == 0; }
  uint64_t received() const { return received_; }  // every record() call
  uint64_t duplicates() const { return duplicates_; }
  uint64_t reordered() const { return reordered_; }
  uint64_t unknown() const { return unknown_; }
  uint64_t missing() const { return missing_; }  // valid after finish()
  // The first few problems in words ("recv0: pub1: expected seq 17, got 19 (gap of 2)").
  const std::vector<std::string>& problems() const { return problems_; }

  static constexpr size_t kMaxProblemTexts = 8;

 private:
  struct Range {
    uint64_t from;  // first missing
    uint64_t to;    // one past the last missing
  };
  struct PerPublisher {
    uint64_t next = 0;
    std::vector<Range> gaps;  // still-missing ranges below next, in order
  };
  void note(std::string text);
  bool takeFromGap(PerPublisher& p, uint64_t sequence);

  std::string name_;
  std::vector<PerPublisher> publishers_;
  uint64_t received_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t reordered_ = 0;
  uint64_t unknown_ = 0;
  uint64_t missing_ = 0;
  uint64_t problem_count_ = 0;
  std::vector<std::string> problems_;
};

}  // namespace edgehub::bench
