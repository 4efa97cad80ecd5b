// The generated control token: where it is published and with which
// permissions (runtime/config/control_token.hpp). Uses a private directory
// under /tmp.
#include "runtime/config/control_token.hpp"
#include "runtime/config/loader.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

using namespace fraiseql;

namespace {

struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/fraiseql-token-test.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
};

mode_t mode_of(const std::string& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

}  // namespace

TEST_SUITE("control token") {
  TEST_CASE("the runtime directory: configured, else XDG_RUNTIME_DIR, else by user") {
    CHECK(control_runtime_dir("/srv/run") == "/srv/run");
    const char* old = std::getenv("XDG_RUNTIME_DIR");
    const std::string saved = old != nullptr ? old : "";
    ::setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
    CHECK(control_runtime_dir("") == "/run/user/1000/fraiseql");
    CHECK(control_runtime_dirs("") ==
          std::vector<std::string>{"/run/user/1000/fraiseql", "/run/fraiseql"});
    CHECK(control_runtime_dirs("/srv/run") == std::vector<std::string>{"/srv/run"});
    ::unsetenv("XDG_RUNTIME_DIR");
    CHECK(control_runtime_dir("") == (::geteuid() == 0
                                          ? std::string("/run/fraiseql")
                                          : "/tmp/fraiseql-" + std::to_string(::geteuid())));
    if (!saved.empty()) ::setenv("XDG_RUNTIME_DIR", saved.c_str(), 1);
    CHECK(control_token_path("/run/fraiseql", 7465) == "/run/fraiseql/control-7465.token");
  }

  TEST_CASE("the token file is written owner-only, in a directory only its owner writes") {
    temp_dir t;
    const std::string dir = t.path + "/run";
    REQUIRE_FALSE(prepare_runtime_dir(dir));
    CHECK(mode_of(dir) == 0700);
    const auto path = control_token_path(dir, 7465);
    const auto token = random_token();
    CHECK(token.size() == 64);
    CHECK(token.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(token != random_token());
    REQUIRE_FALSE(write_token_file(path, token));
    CHECK(mode_of(path) == 0600);
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    CHECK(line == token);
    // Rewritten (a node restarted on the same port): replaced, still 0600.
    REQUIRE_FALSE(write_token_file(path, "other"));
    std::ifstream again(path);
    std::getline(again, line);
    CHECK(line == "other");
    CHECK(mode_of(path) == 0600);

    ::chmod(dir.c_str(), 0777);
    auto why = prepare_runtime_dir(dir);
    REQUIRE(why);
    CHECK(*why == "runtime directory " + dir + " is writable by group or others (chmod 700 it)");
    CHECK(*prepare_runtime_dir("relative/dir") ==
          "runtime directory 'relative/dir' is not an absolute path");
    const std::string file = t.path + "/file";
    std::ofstream(file) << "x";
    CHECK(*prepare_runtime_dir(file) == "runtime directory " + file + " is not a directory");
  }

  TEST_CASE("runtime_dir comes from [control] or FRAISEQL_RUNTIME_DIR and must be absolute") {
    const char* base = "[database]\nurl = \"postgresql://u@h/d\"\n";
    auto env = [](const char* name) -> std::optional<std::string> {
      if (std::string(name) == "FRAISEQL_RUNTIME_DIR") return std::string("/env/run");
      return std::nullopt;
    };
    auto none = [](const char*) -> std::optional<std::string> { return std::nullopt; };
    auto r = load_config_string(std::string(base) + "[control]\nruntime_dir = \"/srv/run\"\n",
                                "t.toml", none);
    REQUIRE(r);
    CHECK(r.value->control.runtime_dir == "/srv/run");
    r = load_config_string(std::string(base) + "[control]\nruntime_dir = \"/srv/run\"\n", "t.toml",
                           env);
    REQUIRE(r);
    CHECK(r.value->control.runtime_dir == "/env/run");
    r = load_config_string(std::string(base) + "[control]\nruntime_dir = \"run\"\n", "t.toml",
                           none);
    REQUIRE_FALSE(r);
    CHECK(r.errors[0].to_string() ==
          "t.toml:4:15: control.runtime_dir: 'run' is not an absolute path");
  }
}
