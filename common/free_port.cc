#include "common/free_port.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

#include "common/file_util.h"
#include "common/unique_fd.h"

namespace matbert {

absl::StatusOr<int> PickFreeLoopbackPort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "cannot create a socket", "");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return ErrnoStatus(errno, "cannot find a free port", "127.0.0.1");
  }
  return ntohs(addr.sin_port);
}

}  // namespace matbert
