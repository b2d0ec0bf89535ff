#pragma once
// Private to transports/tls/: the few file operations the TLS code needs, with errors that
// name the file (certificate problems are operator problems, so the path is the first clue).
//
// Thread-safety: free functions; concurrent calls on the same path race like any file IO.
// Hot/cold: cold (startup only).
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace edgehub::transports::tls {

// The whole file, or nullopt if it does not exist. Any other failure is kIoError
// "<what> '<path>': <strerror>".
core::Result<std::optional<std::string>> readFileIfExists(const std::string& path,
                                                          std::string_view what);

// Writes `bytes` to `path` atomically: a temporary file beside it with `mode` (set with
// fchmod, so the umask cannot widen or narrow it), fsync, rename over `path`, fsync of the
// directory. A crash leaves either the old file or the new one, never a torn file.
core::Status writeFileAtomically(const std::string& path, std::string_view bytes, mode_t mode);

// mkdir(path, mode) unless it exists as a directory.
core::Status ensureDirectory(const std::string& path, mode_t mode);

}  // namespace edgehub::transports::tls
