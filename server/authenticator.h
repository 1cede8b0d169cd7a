// Who is calling matbertd. Three modes:
//   - no tokens (loopback default): every caller is the nameless admin, every call goes through;
//   - one shared token (--token-file, MATBERT_TOKEN): its holder is the admin user "admin";
//   - a tokens file (--tokens-file): each line maps a token to a user and a role, `user` or
//     `admin` (docs/security.md has the format).
// With tokens, every call of JobService, ClusterService and WorkerService carries
// "authorization: Bearer <token>"; health checks and reflection stay open. Each job's ranks get
// a credential of their own, "rank:<job id>:<HMAC-SHA256 of the job id>" under a secret kept in
// the state directory, good for WorkerService calls about that job only; it survives a restart
// of matbertd (the secret does), so adopted ranks keep reporting.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace matbert {

enum class Role { kUser, kAdmin, kRank };

// The caller of one RPC.
struct Principal {
  std::string user;  // "" for the nameless admin of a daemon without tokens, and for ranks
  Role role = Role::kAdmin;
  std::string job_id;  // kRank: the one job its credential is for
};

struct TokenEntry {
  std::string token, user;
  Role role = Role::kUser;
};

// Parses a tokens file: one "TOKEN USER ROLE" per line, blank lines and "#" comments ignored.
// Errors name `source`, the line and the allowed values (tokens of 16 or more characters, not
// starting "rank:"; user names of letters, digits, ".", "_", "-"; roles user|admin; a token
// listed once, a user with one role).
absl::StatusOr<std::vector<TokenEntry>> ParseTokensFile(absl::string_view text,
                                                        absl::string_view source);

// The 32-byte secret rank credentials are made with, as 64 hex digits in `path` (mode 0600):
// read when the file exists, else made from OpenSSL's random generator and written atomically.
absl::StatusOr<std::string> LoadOrCreateRankSecret(const std::string& path);

class Authenticator {
 public:
  // Lets every call through as the nameless admin.
  Authenticator() = default;
  // `tokens` empty: no tokens (as above). `rank_secret`: from LoadOrCreateRankSecret.
  Authenticator(const std::vector<TokenEntry>& tokens, std::string rank_secret);

  bool enabled() const { return !by_digest_.empty(); }
  // How many distinct users the tokens name (for the start-up line).
  int users() const { return users_; }

  // The caller, or UNAUTHENTICATED saying what is missing.
  absl::StatusOr<Principal> Identify(const grpc::CallbackServerContext* ctx) const;
  // The same, from the bearer token alone ("" when none was sent).
  absl::StatusOr<Principal> IdentifyToken(absl::string_view token) const;

  // The credential the ranks of `job_id` present; "" when the daemon takes no tokens.
  std::string RankCredential(absl::string_view job_id) const;

 private:
  std::string RankMac(absl::string_view job_id) const;

  std::map<std::string, TokenEntry> by_digest_;  // SHA-256 of the token -> its entry
  std::string rank_secret_;                      // raw bytes
  int users_ = 0;
};

// What a principal may do: OK, or PERMISSION_DENIED naming the job and what was missing.
// JobService and ClusterService: users and admins, not ranks.
absl::Status MayUseClientApi(const Principal& caller);
// Cancel, watch, logs, checkpoints, download of a job owned by `owner`: its owner, or an admin.
absl::Status MayActOnJob(const Principal& caller, const std::string& job_id,
                         const std::string& owner);
// WorkerService for `job_id`: that job's rank credential, or an admin.
absl::Status MayReportFor(const Principal& caller, const std::string& job_id);

}  // namespace matbert
