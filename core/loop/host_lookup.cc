#include "core/loop/host_lookup.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <mutex>
#include <system_error>
#include <thread>

#include "core/loop/loop_thread.h"

namespace edgehub::core {

// What the lookup thread and the loop share. `abandoned` is set by the destructor (loop thread)
// and read by the thread before it posts and by the posted function before it calls `done`, all
// under `mu`: once the destructor has returned, the thread never posts again.
struct HostLookup::Shared {
  std::mutex mu;
  bool abandoned = false;
  Loop* loop = nullptr;
  DoneFn done;
};

Status HostLookup::resolveWithGetaddrinfo(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (result != nullptr) ::freeaddrinfo(result);
  if (rc != 0) return unavailable("cannot resolve '" + host + "': " + ::gai_strerror(rc));
  if (result == nullptr) return unavailable("cannot resolve '" + host + "': no address");
  return Status::ok();
}

Result<std::unique_ptr<HostLookup>> HostLookup::start(Loop& loop, std::string host, ResolveFn resolve, DoneFn done) {
  auto shared = std::make_shared<Shared>();
  shared->loop = &loop;
  shared->done = std::move(done);
  if (!resolve) resolve = &HostLookup::resolveWithGetaddrinfo;
  try {
    std::thread([shared, host = std::move(host), resolve = std::move(resolve)] {
      // The resolver may talk to DNS over TCP with writev(2).
      blockSigpipeOnThisThread();
      Status status = resolve(host);
      std::lock_guard lock(shared->mu);
      if (shared->abandoned) return;
      (void)shared->loop->post([shared, status = std::move(status)] {
        DoneFn report;
        {
          std::lock_guard inner(shared->mu);
          if (shared->abandoned) return;
          shared->abandoned = true;  // at most once
          report = std::move(shared->done);
        }
        report(status);  // may destroy the HostLookup: nothing of it is touched after this
      });
    }).detach();
  } catch (const std::system_error& e) {
    return resourceExhausted(std::string("cannot start a host lookup thread: ") + e.what());
  }
  return std::unique_ptr<HostLookup>(new HostLookup(std::move(shared)));
}

HostLookup::~HostLookup() {
  std::lock_guard lock(shared_->mu);
  shared_->abandoned = true;
  shared_->done = nullptr;  // what it captured goes now, on the loop thread
}

bool isIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace edgehub::core
