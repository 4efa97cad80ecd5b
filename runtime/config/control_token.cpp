#include "runtime/config/control_token.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fraiseql {

namespace {

std::string env_dir(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v == '/' ? std::string(v) : std::string();
}

std::string errno_text() {
  return std::strerror(errno);
}

}  // namespace

std::string control_runtime_dir(const std::string& configured) {
  if (!configured.empty()) return configured;
  if (auto xdg = env_dir("XDG_RUNTIME_DIR"); !xdg.empty()) return xdg + "/fraiseql";
  if (::geteuid() == 0) return "/run/fraiseql";
  return "/tmp/fraiseql-" + std::to_string(::geteuid());
}

std::vector<std::string> control_runtime_dirs(const std::string& configured) {
  std::vector<std::string> out{control_runtime_dir(configured)};
  if (configured.empty() && out.front() != "/run/fraiseql") out.emplace_back("/run/fraiseql");
  return out;
}

std::string control_token_path(const std::string& dir, uint16_t port) {
  return dir + "/control-" + std::to_string(port) + ".token";
}

std::optional<std::string> prepare_runtime_dir(const std::string& dir) {
  if (dir.empty() || dir.front() != '/')
    return "runtime directory '" + dir + "' is not an absolute path";
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return "cannot create runtime directory " + dir + ": " + errno_text();
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0)
    return "cannot inspect runtime directory " + dir + ": " + errno_text();
  if (!S_ISDIR(st.st_mode)) return "runtime directory " + dir + " is not a directory";
  if (st.st_uid != ::geteuid() && st.st_uid != 0)
    return "runtime directory " + dir + " belongs to another user (uid " +
           std::to_string(st.st_uid) + ")";
  if ((st.st_mode & 022) != 0)
    return "runtime directory " + dir + " is writable by group or others (chmod 700 it)";
  return std::nullopt;
}

std::optional<std::string> write_token_file(const std::string& path, const std::string& token) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return "cannot create " + tmp + ": " + errno_text();
  const std::string line = token + "\n";
  const bool ok = ::fchmod(fd, 0600) == 0 &&
                  ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  const std::string why = ok ? std::string() : errno_text();
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string problem = "cannot write " + path + ": " + (ok ? errno_text() : why);
    ::unlink(tmp.c_str());
    return problem;
  }
  return std::nullopt;
}

std::string random_token() {
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("no randomness for the control token: " + errno_text());
    got += static_cast<size_t>(n);
  }
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

}  // namespace fraiseql
