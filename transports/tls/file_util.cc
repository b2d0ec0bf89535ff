#include "transports/tls/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace edgehub::transports::tls {
namespace {

core::Status errnoError(std::string_view what, const std::string& path, int err) {
  std::string message(what);
  message.append(" '");
  message.append(path);
  message.append("': ");
  message.append(std::strerror(err));
  if (err == ENOENT) return core::notFound(std::move(message));
  return core::ioError(std::move(message));
}

std::string parentOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

core::Result<std::optional<std::string>> readFileIfExists(const std::string& path,
                                                          std::string_view what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return errnoError(what, path, errno);
  }
  std::string out;
  char buffer[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return errnoError(what, path, err);
    }
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return std::optional<std::string>(std::move(out));
}

core::Status writeFileAtomically(const std::string& path, std::string_view bytes, mode_t mode) {
  const std::string temp = path + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return errnoError("cannot create", temp, errno);
  auto fail = [&](std::string_view what) {
    const int err = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    return errnoError(what, temp, err);
  };
  // A leftover temporary file from a crash keeps its old mode through O_CREAT; fchmod makes
  // the mode exact whatever the umask or the leftover.
  if (::fchmod(fd, mode) != 0) return fail("cannot chmod");
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write");
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("cannot fsync");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return errnoError("cannot close", temp, err);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return errnoError("cannot rename into place", path, err);
  }
  // The rename is durable only once the directory entry is.
  const std::string dir = parentOf(path);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return errnoError("cannot open directory", dir, errno);
  const int rc = ::fsync(dir_fd);
  const int err = errno;
  ::close(dir_fd);
  if (rc != 0) return errnoError("cannot fsync directory", dir, err);
  return core::Status::ok();
}

core::Status ensureDirectory(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) == 0) {
    // mkdir applies the umask; the mode we were asked for is the one we want.
    if (::chmod(path.c_str(), mode) != 0) return errnoError("cannot chmod directory", path, errno);
    return core::Status::ok();
  }
  if (errno != EEXIST) return errnoError("cannot create directory", path, errno);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errnoError("cannot stat", path, errno);
  if (!S_ISDIR(st.st_mode)) {
    return core::failedPrecondition("'" + path + "' exists and is not a directory");
  }
  return core::Status::ok();
}

}  // namespace edgehub::transports::tls
