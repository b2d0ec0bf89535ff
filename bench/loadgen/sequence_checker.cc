#include "bench/loadgen/sequence_checker.h"

#include <algorithm>
#include <utility>

namespace edgehub::bench {

SequenceChecker::SequenceChecker(uint32_t publishers, std::string name)
    : name_(std::move(name)), publishers_(publishers) {}

void SequenceChecker::note(std::string text) {
  ++problem_count_;
  if (problems_.size() < kMaxProblemTexts) {
    problems_.push_back(name_.empty() ? std::move(text) : name_ + ": " + text);
  }
}

bool SequenceChecker::takeFromGap(PerPublisher& p, uint64_t sequence) {
  for (size_t i = 0; i < p.gaps.size(); ++i) {
    Range& r = p.gaps[i];
    if (sequence < r.from || sequence >= r.to) continue;
    if (r.to - r.from == 1) {
      p.gaps.erase(p.gaps.begin() + static_cast<std::ptrdiff_t>(i));
    } else if (sequence == r.from) {
      ++r.from;
    } else if (sequence + 1 == r.to) {
      --r.to;
    } else {
      Range tail{sequence + 1, r.to};
      r.to = sequence;
      p.gaps.insert(p.gaps.begin() + static_cast<std::ptrdiff_t>(i) + 1, tail);
    }
    return true;
  }
  return false;
}

void SequenceChecker::record(uint32_t publisher, uint64_t sequence) {
  ++received_;
  if (publisher >= publishers_.size()) {
    ++unknown_;
    note("message from unknown publisher " + std::to_string(publisher));
    return;
  }
  PerPublisher& p = publishers_[publisher];
  if (sequence == p.next) {  // the expected case
    ++p.next;
    return;
  }
  const std::string who = "pub" + std::to_string(publisher) + ": ";
  if (sequence > p.next) {
    note(who + "expected seq " + std::to_string(p.next) + ", got " + std::to_string(sequence) +
         " (gap of " + std::to_string(sequence - p.next) + ")");
    p.gaps.push_back(Range{p.next, sequence});
    p.next = sequence + 1;
    return;
  }
  if (takeFromGap(p, sequence)) {
    ++reordered_;
    note(who + "seq " + std::to_string(sequence) + " arrived out of order (after " +
         std::to_string(p.next - 1) + ")");
  } else {
    ++duplicates_;
    note(who + "duplicate seq " + std::to_string(sequence));
  }
}

void SequenceChecker::finish(std::span<const uint64_t> expected) {
  missing_ = 0;
  for (size_t i = 0; i < publishers_.size(); ++i) {
    PerPublisher& p = publishers_[i];
    const uint64_t want = i < expected.size() ? expected[i] : 0;
    uint64_t missing_here = 0;
    for (const Range& r : p.gaps) {
      if (r.from >= want) continue;
      missing_here += std::min(r.to, want) - r.from;
    }
    if (p.next > want) {
      uint64_t extra = p.next - want;
      unknown_ += extra;
      note("pub" + std::to_string(i) + ": " + std::to_string(extra) +
           " message(s) beyond the " + std::to_string(want) + " sent");
    } else if (p.next < want) {
      note("pub" + std::to_string(i) + ": missing the last " + std::to_string(want - p.next) +
           " message(s) (from seq " + std::to_string(p.next) + ")");
      missing_here += want - p.next;
    }
    missing_ += missing_here;
  }
}

}  // namespace edgehub::bench
